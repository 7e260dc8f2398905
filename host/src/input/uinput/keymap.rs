//! Windows virtual-key codes (what GameStream carries) to Linux input key codes.

/// Linux `KEY_*` for virtual-key `vk`, or `None` for keys without one.
pub fn linux_key(vk: u16) -> Option<u16> {
    // Letters and digits have contiguous VK ranges but not contiguous Linux codes.
    const LETTERS: [u16; 26] = [
        30, 48, 46, 32, 18, 33, 34, 35, 23, 36, 37, 38, 50, 49, 24, 25, 16, 19, 31, 20, 22, 47, 17,
        45, 21, 44,
    ];
    const DIGITS: [u16; 10] = [11, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    const NUMPAD: [u16; 10] = [82, 79, 80, 81, 75, 76, 77, 71, 72, 73];
    Some(match vk {
        0x41..=0x5A => LETTERS[usize::from(vk - 0x41)],
        0x30..=0x39 => DIGITS[usize::from(vk - 0x30)],
        0x60..=0x69 => NUMPAD[usize::from(vk - 0x60)],
        0x70..=0x79 => 59 + (vk - 0x70),  // F1..F10
        0x7A => 87,                       // F11
        0x7B => 88,                       // F12
        0x7C..=0x87 => 183 + (vk - 0x7C), // F13..F24
        0x08 => 14,                       // backspace
        0x09 => 15,                       // tab
        0x0C => 76,                       // clear -> KP5
        0x0D => 28,                       // enter
        0x10 | 0xA0 => 42,                // shift / left shift
        0xA1 => 54,                       // right shift
        0x11 | 0xA2 => 29,                // control / left control
        0xA3 => 97,                       // right control
        0x12 | 0xA4 => 56,                // alt / left alt
        0xA5 => 100,                      // right alt
        0x13 => 119,                      // pause
        0x14 => 58,                       // caps lock
        0x1B => 1,                        // escape
        0x20 => 57,                       // space
        0x21 => 104,                      // page up
        0x22 => 109,                      // page down
        0x23 => 107,                      // end
        0x24 => 102,                      // home
        0x25 => 105,                      // left
        0x26 => 103,                      // up
        0x27 => 106,                      // right
        0x28 => 108,                      // down
        0x2C => 99,                       // print screen (sysrq)
        0x2D => 110,                      // insert
        0x2E => 111,                      // delete
        0x5B => 125,                      // left windows
        0x5C => 126,                      // right windows
        0x5D => 127,                      // menu (compose)
        0x6A => 55,                       // numpad *
        0x6B => 78,                       // numpad +
        0x6D => 74,                       // numpad -
        0x6E => 83,                       // numpad .
        0x6F => 98,                       // numpad /
        0x90 => 69,                       // num lock
        0x91 => 70,                       // scroll lock
        0xBA => 39,                       // ;
        0xBB => 13,                       // =
        0xBC => 51,                       // ,
        0xBD => 12,                       // -
        0xBE => 52,                       // .
        0xBF => 53,                       // /
        0xC0 => 41,                       // `
        0xDB => 26,                       // [
        0xDC => 43,                       // backslash
        0xDD => 27,                       // ]
        0xDE => 40,                       // '
        0xE2 => 86,                       // 102nd key
        0xAD => 113,                      // volume mute
        0xAE => 114,                      // volume down
        0xAF => 115,                      // volume up
        0xB0 => 163,                      // next track
        0xB1 => 165,                      // previous track
        0xB2 => 166,                      // stop
        0xB3 => 164,                      // play/pause
        _ => return None,
    })
}

/// Every Linux key the virtual keyboard declares.
pub fn all_keys() -> impl Iterator<Item = u16> {
    let mut keys: Vec<u16> = (0u16..=0xFF).filter_map(linux_key).collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_keys_map_to_linux_codes() {
        // KEY_A 30, KEY_Z 44, KEY_1 2, KEY_0 11, KEY_F1 59, KEY_F10 68, KEY_F11 87,
        // KEY_F12 88, KEY_F13 183, KEY_ENTER 28, KEY_LEFTSHIFT 42, KEY_RIGHTALT 100.
        for (vk, key) in [
            (0x41, 30),
            (0x5A, 44),
            (0x31, 2),
            (0x30, 11),
            (0x70, 59),
            (0x79, 68),
            (0x7A, 87),
            (0x7B, 88),
            (0x7C, 183),
            (0x0D, 28),
            (0xA0, 42),
            (0xA5, 100),
            (0x26, 103),
        ] {
            assert_eq!(linux_key(vk), Some(key), "vk {vk:#x}");
        }
        assert_eq!(linux_key(0xFF), None);
        assert!(all_keys().count() > 100);
    }
}
