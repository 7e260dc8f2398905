//! Typing UTF-8 text through a virtual keyboard.
//!
//! A keyboard can only press keys, so text becomes key presses: characters of the US
//! layout with their keys (and Shift), every other character through a spare key code
//! bound to it in an extended keymap (see [`super::keymap`]). The keymap is uploaded
//! again only when the text needs characters the current one lacks, and then binds as
//! many of the coming characters as the spare codes hold, so a long text in another
//! script costs one upload per [`SPARE`](super::keymap::SPARE)-many distinct
//! characters, not one per character.

use super::keymap::{SPARE, char_keysym, us_key};

/// One thing the keyboard does to type text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Upload the keymap with these (spare code, character) bindings.
    Upload(Vec<(u16, char)>),
    /// Press and release `key`, with Shift held when `shift`.
    Type {
        /// Evdev code.
        key: u16,
        /// Whether Shift is held.
        shift: bool,
    },
}

/// The spare codes' current bindings, kept between texts.
#[derive(Debug, Clone, Default)]
pub struct TextKeys {
    bound: Vec<(u16, char)>,
}

fn spare_count() -> usize {
    SPARE.len()
}

impl TextKeys {
    /// The bindings of the keymap last planned for upload.
    pub fn bound(&self) -> &[(u16, char)] {
        &self.bound
    }

    /// Appends the steps that type `text` to `out`. Control characters other than
    /// newline and tab have no key and are skipped.
    pub fn plan(&mut self, text: &str, out: &mut Vec<Step>) {
        let chars: Vec<char> = text.chars().collect();
        for (i, &c) in chars.iter().enumerate() {
            if let Some((key, shift)) = us_key(c) {
                out.push(Step::Type { key, shift });
                continue;
            }
            if char_keysym(c).is_none() {
                continue;
            }
            if let Some(&(key, _)) = self.bound.iter().find(|(_, b)| *b == c) {
                out.push(Step::Type { key, shift: false });
                continue;
            }
            // Rebind: this character and the next unbound ones, in order.
            self.bound.clear();
            for &next in &chars[i..] {
                if self.bound.len() == spare_count() {
                    break;
                }
                if us_key(next).is_some()
                    || char_keysym(next).is_none()
                    || self.bound.iter().any(|(_, b)| *b == next)
                {
                    continue;
                }
                let key = *SPARE.start() + self.bound.len() as u16;
                self.bound.push((key, next));
            }
            out.push(Step::Upload(self.bound.clone()));
            out.push(Step::Type {
                key: *SPARE.start(),
                shift: false,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(keys: &mut TextKeys, text: &str) -> Vec<Step> {
        let mut out = Vec::new();
        keys.plan(text, &mut out);
        out
    }

    #[test]
    fn us_text_needs_no_upload() {
        let mut keys = TextKeys::default();
        assert_eq!(
            plan(&mut keys, "Hi!\n"),
            vec![
                Step::Type {
                    key: 35,
                    shift: true
                },
                Step::Type {
                    key: 23,
                    shift: false
                },
                Step::Type {
                    key: 2,
                    shift: true
                },
                Step::Type {
                    key: 28,
                    shift: false
                },
            ]
        );
    }

    #[test]
    fn other_characters_are_bound_once_per_upload() {
        let mut keys = TextKeys::default();
        let steps = plan(&mut keys, "é€é a\u{7}");
        assert_eq!(
            steps,
            vec![
                Step::Upload(vec![(200, 'é'), (201, '€')]),
                Step::Type {
                    key: 200,
                    shift: false
                },
                Step::Type {
                    key: 201,
                    shift: false
                },
                Step::Type {
                    key: 200,
                    shift: false
                },
                Step::Type {
                    key: 57,
                    shift: false
                },
                Step::Type {
                    key: 30,
                    shift: false
                },
            ]
        );
        // The bindings outlive the text: the same characters later need no upload.
        assert!(
            plan(&mut keys, "€")
                .iter()
                .all(|s| !matches!(s, Step::Upload(_)))
        );
    }

    #[test]
    fn more_characters_than_spare_codes_upload_again_and_keep_order() {
        let mut keys = TextKeys::default();
        let text: String = (0..spare_count() as u32 + 5)
            .map(|i| char::from_u32(0x4e00 + i).unwrap())
            .collect();
        let steps = plan(&mut keys, &text);
        let uploads: Vec<&Vec<(u16, char)>> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Upload(b) => Some(b),
                Step::Type { .. } => None,
            })
            .collect();
        assert_eq!(uploads.len(), 2);
        assert_eq!(uploads[0].len(), spare_count());
        assert_eq!(uploads[1].len(), 5);
        // Replaying the steps types the text in order.
        let mut bound: Vec<(u16, char)> = Vec::new();
        let mut typed = String::new();
        for s in steps {
            match s {
                Step::Upload(b) => bound = b,
                Step::Type { key, .. } => {
                    typed.push(bound.iter().find(|(k, _)| *k == key).unwrap().1)
                }
            }
        }
        assert_eq!(typed, text);
    }
}
