//! Hex as GameStream uses it: clients send lowercase, Sunshine answers uppercase, and
//! both accept either.

/// Decodes hex of either case; `None` for odd length or a non-hex digit.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    bytes
        .chunks_exact(2)
        .map(|p| Some((nibble(p[0])? << 4) | nibble(p[1])?))
        .collect()
}

fn encode(data: &[u8], digits: &[u8; 16]) -> String {
    let mut s = String::with_capacity(data.len() * 2);
    for b in data {
        s.push(digits[usize::from(b >> 4)] as char);
        s.push(digits[usize::from(b & 15)] as char);
    }
    s
}

/// Uppercase hex (what the host sends).
pub fn encode_upper(data: &[u8]) -> String {
    encode(data, b"0123456789ABCDEF")
}

/// Lowercase hex (what clients send).
pub fn encode_lower(data: &[u8]) -> String {
    encode(data, b"0123456789abcdef")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        assert_eq!(encode_upper(&[0x00, 0xAB, 0x7f]), "00AB7F");
        assert_eq!(encode_lower(&[0xAB]), "ab");
        assert_eq!(decode("00aB7f"), Some(vec![0, 0xAB, 0x7F]));
        assert_eq!(decode("abc"), None);
        assert_eq!(decode("zz"), None);
        assert_eq!(decode(""), Some(vec![]));
    }

    proptest! {
        #[test]
        fn roundtrip(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(decode(&encode_upper(&data)), Some(data.clone()));
            prop_assert_eq!(decode(&encode_lower(&data)), Some(data));
        }
    }
}
