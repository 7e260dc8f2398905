//! The generated keymap, compiled with libxkbcommon as the compositor and apps do.

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
