//! The XKB keymap the host's virtual keyboard uploads to a session's compositor.
//!
//! `zwp_virtual_keyboard_v1` sends evdev key codes and leaves their meaning to a keymap
//! the client supplies. The host writes that keymap itself, in full (no `include` of
//! the system's xkeyboard-config), so what a key types never depends on the box's or
//! the session user's layout: GameStream sends Windows virtual-key codes of a US
//! layout (the client translates its own layout to those), so the keymap is a US one.
//!
//! Text (`LiSendUtf8TextEvent`) may hold any character. Characters the US keys type
//! are typed with them; every other character is bound to one of [`SPARE`] key codes
//! the layout leaves free, in an extended keymap that the keyboard uploads before it
//! types them (see [`super::text`]). Those codes stay below 256 so that X11 apps under
//! Xwayland can receive them as well.

use std::fmt::Write as _;

/// XKB key codes are evdev codes plus 8.
pub const EVDEV_OFFSET: u32 = 8;

/// Evdev codes the US table leaves unused, bound to text characters on demand.
pub const SPARE: std::ops::RangeInclusive<u16> = 200..=247;

/// Real modifier bits, in the order libxkbcommon numbers the real modifiers; the
/// keymap below maps its modifier keys to exactly these, so the masks the keyboard
/// sends with `modifiers` mean the same in the compositor and in every client.
pub mod mods {
    /// Shift.
    pub const SHIFT: u32 = 1 << 0;
    /// Caps Lock.
    pub const LOCK: u32 = 1 << 1;
    /// Control.
    pub const CONTROL: u32 = 1 << 2;
    /// Mod1: Alt.
    pub const ALT: u32 = 1 << 3;
    /// Mod2: Num Lock.
    pub const NUM: u32 = 1 << 4;
    /// Mod4: Super (the Windows key).
    pub const SUPER: u32 = 1 << 6;
}

/// How one key's levels work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// One keysym whatever the modifiers.
    One,
    /// Shift picks the second keysym.
    Two,
    /// Shift or Caps Lock picks the upper case.
    Alphabetic,
}

/// A printable key: evdev code, then the characters it types without and with Shift.
const PRINTABLE: &[(u16, char, char)] = &[
    (2, '1', '!'),
    (3, '2', '@'),
    (4, '3', '#'),
    (5, '4', '$'),
    (6, '5', '%'),
    (7, '6', '^'),
    (8, '7', '&'),
    (9, '8', '*'),
    (10, '9', '('),
    (11, '0', ')'),
    (12, '-', '_'),
    (13, '=', '+'),
    (16, 'q', 'Q'),
    (17, 'w', 'W'),
    (18, 'e', 'E'),
    (19, 'r', 'R'),
    (20, 't', 'T'),
    (21, 'y', 'Y'),
    (22, 'u', 'U'),
    (23, 'i', 'I'),
    (24, 'o', 'O'),
    (25, 'p', 'P'),
    (26, '[', '{'),
    (27, ']', '}'),
    (30, 'a', 'A'),
    (31, 's', 'S'),
    (32, 'd', 'D'),
    (33, 'f', 'F'),
    (34, 'g', 'G'),
    (35, 'h', 'H'),
    (36, 'j', 'J'),
    (37, 'k', 'K'),
    (38, 'l', 'L'),
    (39, ';', ':'),
    (40, '\'', '"'),
    (41, '`', '~'),
    (43, '\\', '|'),
    (44, 'z', 'Z'),
    (45, 'x', 'X'),
    (46, 'c', 'C'),
    (47, 'v', 'V'),
    (48, 'b', 'B'),
    (49, 'n', 'N'),
    (50, 'm', 'M'),
    (51, ',', '<'),
    (52, '.', '>'),
    (53, '/', '?'),
    (57, ' ', ' '),
    (86, '<', '>'),
];

/// Keys that type no character (or a keypad one): evdev code and keysym name.
const NAMED: &[(u16, &str)] = &[
    (1, "Escape"),
    (14, "BackSpace"),
    (15, "Tab"),
    (28, "Return"),
    (29, "Control_L"),
    (42, "Shift_L"),
    (54, "Shift_R"),
    (55, "KP_Multiply"),
    (56, "Alt_L"),
    (58, "Caps_Lock"),
    (59, "F1"),
    (60, "F2"),
    (61, "F3"),
    (62, "F4"),
    (63, "F5"),
    (64, "F6"),
    (65, "F7"),
    (66, "F8"),
    (67, "F9"),
    (68, "F10"),
    (69, "Num_Lock"),
    (70, "Scroll_Lock"),
    // The keypad types digits: as with Num Lock on, which is what a game asking
    // for a number on the keypad expects.
    (71, "KP_7"),
    (72, "KP_8"),
    (73, "KP_9"),
    (74, "KP_Subtract"),
    (75, "KP_4"),
    (76, "KP_5"),
    (77, "KP_6"),
    (78, "KP_Add"),
    (79, "KP_1"),
    (80, "KP_2"),
    (81, "KP_3"),
    (82, "KP_0"),
    (83, "KP_Decimal"),
    (87, "F11"),
    (88, "F12"),
    (96, "KP_Enter"),
    (97, "Control_R"),
    (98, "KP_Divide"),
    (99, "Print"),
    (100, "Alt_R"),
    (102, "Home"),
    (103, "Up"),
    (104, "Prior"),
    (105, "Left"),
    (106, "Right"),
    (107, "End"),
    (108, "Down"),
    (109, "Next"),
    (110, "Insert"),
    (111, "Delete"),
    (113, "XF86AudioMute"),
    (114, "XF86AudioLowerVolume"),
    (115, "XF86AudioRaiseVolume"),
    (119, "Pause"),
    (125, "Super_L"),
    (126, "Super_R"),
    (127, "Menu"),
    (163, "XF86AudioNext"),
    (164, "XF86AudioPlay"),
    (165, "XF86AudioPrev"),
    (166, "XF86AudioStop"),
    (183, "F13"),
    (184, "F14"),
    (185, "F15"),
    (186, "F16"),
    (187, "F17"),
    (188, "F18"),
    (189, "F19"),
    (190, "F20"),
    (191, "F21"),
    (192, "F22"),
    (193, "F23"),
    (194, "F24"),
];

/// Which keys set which real modifier (the `modifier_map` lines).
const MODIFIER_KEYS: &[(&str, &[u16])] = &[
    ("Shift", &[42, 54]),
    ("Lock", &[58]),
    ("Control", &[29, 97]),
    ("Mod1", &[56, 100]),
    ("Mod2", &[69]),
    ("Mod4", &[125, 126]),
];

/// The modifier bit the key with evdev code `key` holds while pressed (Caps Lock and
/// Num Lock toggle instead: see [`lock_bit`]).
pub fn modifier_bit(key: u16) -> Option<u32> {
    match key {
        42 | 54 => Some(mods::SHIFT),
        29 | 97 => Some(mods::CONTROL),
        56 | 100 => Some(mods::ALT),
        125 | 126 => Some(mods::SUPER),
        _ => None,
    }
}

/// The lock bit the key with evdev code `key` toggles on each press.
pub fn lock_bit(key: u16) -> Option<u32> {
    match key {
        58 => Some(mods::LOCK),
        69 => Some(mods::NUM),
        _ => None,
    }
}

/// The keysym name of a character: libxkbcommon reads `Uxxxx` as that code point's
/// keysym (the Latin-1 keysym below U+0100, `0x01000000 + cp` above), so every
/// printable character has one without a name table. `None` for control characters,
/// which have no keysym of that form.
pub fn char_keysym(c: char) -> Option<String> {
    let cp = u32::from(c);
    if cp < 0x20 || (0x7f..0xa0).contains(&cp) {
        return None;
    }
    Some(format!("U{cp:04X}"))
}

/// The key and Shift state that type `c` in the US table, if any. Newline and tab
/// are typed as Return and Tab, as a text field expects.
pub fn us_key(c: char) -> Option<(u16, bool)> {
    match c {
        '\n' | '\r' => return Some((28, false)),
        '\t' => return Some((15, false)),
        _ => {}
    }
    PRINTABLE.iter().find_map(|&(key, base, shifted)| {
        if c == base {
            Some((key, false))
        } else if c == shifted {
            Some((key, true))
        } else {
            None
        }
    })
}

fn push_key(out: &mut String, key: u16, kind: Kind, syms: &[&str]) {
    let ty = match kind {
        Kind::One => "ONE_LEVEL",
        Kind::Two => "TWO_LEVEL",
        Kind::Alphabetic => "ALPHABETIC",
    };
    let _ = writeln!(
        out,
        "    key <K{key}> {{ type = \"{ty}\", [ {} ] }};",
        syms.join(", ")
    );
}

/// The keymap text (`XKB_KEYMAP_FORMAT_TEXT_V1`): the US keys, plus `extra` as
/// (spare evdev code, character) pairs bound to single-level keys.
pub fn keymap(extra: &[(u16, char)]) -> String {
    let mut out = String::with_capacity(16 * 1024);
    out.push_str(
        "xkb_keymap {\nxkb_keycodes \"punktfunk\" {\n    minimum = 8;\n    maximum = 255;\n",
    );
    let mut codes: Vec<u16> = PRINTABLE.iter().map(|p| p.0).collect();
    codes.extend(NAMED.iter().map(|n| n.0));
    codes.extend(extra.iter().map(|e| e.0));
    codes.sort_unstable();
    codes.dedup();
    for key in &codes {
        let _ = writeln!(out, "    <K{key}> = {};", u32::from(*key) + EVDEV_OFFSET);
    }
    out.push_str("};\n");
    // The three key types the symbols use, with the level names libxkbcommon wants.
    out.push_str(concat!(
        "xkb_types \"punktfunk\" {\n",
        "    type \"ONE_LEVEL\" { modifiers = none; level_name[Level1] = \"Any\"; };\n",
        "    type \"TWO_LEVEL\" { modifiers = Shift; map[Shift] = Level2;\n",
        "        level_name[Level1] = \"Base\"; level_name[Level2] = \"Shift\"; };\n",
        "    type \"ALPHABETIC\" { modifiers = Shift+Lock; map[Shift] = Level2; map[Lock] = Level2;\n",
        "        level_name[Level1] = \"Base\"; level_name[Level2] = \"Caps\"; };\n",
        "};\n",
    ));
    // Actions for the modifier keys. The compositor takes the modifier state from the
    // keyboard's `modifiers` requests, not from these; they make the keymap behave
    // the same for clients (Xwayland) that interpret key presses themselves.
    out.push_str(concat!(
        "xkb_compatibility \"punktfunk\" {\n",
        "    interpret Shift_L { action = SetMods(modifiers = Shift); };\n",
        "    interpret Shift_R { action = SetMods(modifiers = Shift); };\n",
        "    interpret Control_L { action = SetMods(modifiers = Control); };\n",
        "    interpret Control_R { action = SetMods(modifiers = Control); };\n",
        "    interpret Alt_L { action = SetMods(modifiers = Mod1); };\n",
        "    interpret Alt_R { action = SetMods(modifiers = Mod1); };\n",
        "    interpret Super_L { action = SetMods(modifiers = Mod4); };\n",
        "    interpret Super_R { action = SetMods(modifiers = Mod4); };\n",
        "    interpret Caps_Lock { action = LockMods(modifiers = Lock); };\n",
        "    interpret Num_Lock { action = LockMods(modifiers = Mod2); };\n",
        "};\n",
    ));
    out.push_str("xkb_symbols \"punktfunk\" {\n");
    for &(key, base, shifted) in PRINTABLE {
        let (Some(b), Some(s)) = (char_keysym(base), char_keysym(shifted)) else {
            continue;
        };
        let kind = if base.is_ascii_lowercase() {
            Kind::Alphabetic
        } else if base == shifted {
            Kind::One
        } else {
            Kind::Two
        };
        if kind == Kind::One {
            push_key(&mut out, key, kind, &[&b]);
        } else {
            push_key(&mut out, key, kind, &[&b, &s]);
        }
    }
    for &(key, name) in NAMED {
        push_key(&mut out, key, Kind::One, &[name]);
    }
    for &(key, c) in extra {
        if let Some(sym) = char_keysym(c) {
            push_key(&mut out, key, Kind::One, &[&sym]);
        }
    }
    for (modifier, keys) in MODIFIER_KEYS {
        let list: Vec<String> = keys.iter().map(|k| format!("<K{k}>")).collect();
        let _ = writeln!(
            out,
            "    modifier_map {modifier} {{ {} }};",
            list.join(", ")
        );
    }
    out.push_str("};\n};\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::uinput::keymap::all_keys;
    use xkbcommon::xkb;

    fn compile(text: String) -> xkb::Keymap {
        let ctx = xkb::Context::new(xkb::CONTEXT_NO_DEFAULT_INCLUDES);
        xkb::Keymap::new_from_string(
            &ctx,
            text,
            xkb::KEYMAP_FORMAT_TEXT_V1,
            xkb::KEYMAP_COMPILE_NO_FLAGS,
        )
        .expect("the generated keymap compiles")
    }

    fn typed(state: &xkb::State, key: u16) -> String {
        state.key_get_utf8(xkb::Keycode::new(u32::from(key) + EVDEV_OFFSET))
    }

    #[test]
    fn the_keymap_compiles_and_types_the_us_layout() {
        let keymap = compile(keymap(&[]));
        let mut state = xkb::State::new(&keymap);
        assert_eq!(typed(&state, 30), "a");
        assert_eq!(typed(&state, 2), "1");
        assert_eq!(typed(&state, 57), " ");
        state.update_mask(mods::SHIFT, 0, 0, 0, 0, 0);
        assert_eq!(typed(&state, 30), "A");
        assert_eq!(typed(&state, 2), "!");
        assert_eq!(typed(&state, 40), "\"");
        // Caps Lock upper-cases letters only.
        state.update_mask(0, 0, mods::LOCK, 0, 0, 0);
        assert_eq!(typed(&state, 30), "A");
        assert_eq!(typed(&state, 2), "1");
        // The real modifiers sit at the indices the masks assume.
        for (name, bit) in [
            (xkb::MOD_NAME_SHIFT, mods::SHIFT),
            (xkb::MOD_NAME_CAPS, mods::LOCK),
            (xkb::MOD_NAME_CTRL, mods::CONTROL),
            (xkb::MOD_NAME_ALT, mods::ALT),
            (xkb::MOD_NAME_NUM, mods::NUM),
            (xkb::MOD_NAME_LOGO, mods::SUPER),
        ] {
            assert_eq!(1 << keymap.mod_get_index(name), bit, "{name}");
        }
    }

    #[test]
    fn every_key_the_host_sends_has_a_keysym() {
        let keymap = compile(keymap(&[]));
        for key in all_keys() {
            let code = xkb::Keycode::new(u32::from(key) + EVDEV_OFFSET);
            assert!(
                !keymap.key_get_syms_by_level(code, 0, 0).is_empty(),
                "evdev key {key} has no keysym"
            );
            assert!(!SPARE.contains(&key), "evdev key {key} is a spare code");
        }
        assert_eq!(
            keymap.key_get_name(xkb::Keycode::new(42 + EVDEV_OFFSET)),
            Some("K42")
        );
    }

    #[test]
    fn spare_codes_type_any_character() {
        let extra = [(200, 'é'), (201, '€'), (202, '🎮'), (203, 'ж')];
        let keymap = compile(keymap(&extra));
        let state = xkb::State::new(&keymap);
        for (key, c) in extra {
            assert_eq!(typed(&state, key), c.to_string());
        }
        assert_eq!(typed(&state, 30), "a", "the US keys stay");
    }

    #[test]
    fn characters_find_their_us_keys() {
        assert_eq!(us_key('a'), Some((30, false)));
        assert_eq!(us_key('A'), Some((30, true)));
        assert_eq!(us_key('?'), Some((53, true)));
        assert_eq!(us_key('<'), Some((51, true)), "the first key wins");
        assert_eq!(us_key('\n'), Some((28, false)));
        assert_eq!(us_key('é'), None);
        assert_eq!(char_keysym('\u{7}'), None);
        assert_eq!(char_keysym('€').as_deref(), Some("U20AC"));
    }
}
