//! GameStream pointer values to `zwlr_virtual_pointer_v1` ones. Pure, so the scaling
//! and the scroll directions are unit-tested without a compositor.

/// Degrees of scroll per wheel notch in Wayland's axis units: what libinput reports
/// for a mouse wheel click, so apps scroll a virtual notch as far as a real one.
pub const AXIS_PER_NOTCH: f64 = 15.0;

/// Windows' `WHEEL_DELTA`: GameStream scroll amounts come in 1/120 notches.
pub const WHEEL_DELTA: i32 = 120;

/// An absolute position the virtual pointer sends: `(x, y)` within `(extent_x,
/// extent_y)`, which is the output's size in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Absolute {
    /// X in output pixels.
    pub x: u32,
    /// Y in output pixels.
    pub y: u32,
    /// The output's width.
    pub extent_x: u32,
    /// The output's height.
    pub extent_y: u32,
}

/// Scales a client position (`x`, `y` within the client's reference size `width` x
/// `height`, usually its window) to the output (`output` = width, height).
///
/// The compositor maps `x / extent` across the output, so the host could pass the
/// client's size as the extent; it scales itself instead so that positions outside
/// the client's window are clamped to the output's last pixel rather than moving the
/// cursor onto another output, and so that the rounding is the host's, tested here.
/// `None` when either size is zero (a malformed packet).
pub fn scale_absolute(
    x: i16,
    y: i16,
    width: i16,
    height: i16,
    output: (u32, u32),
) -> Option<Absolute> {
    let (ow, oh) = output;
    if width <= 0 || height <= 0 || ow == 0 || oh == 0 {
        return None;
    }
    let axis = |v: i16, range: i16, out: u32| -> u32 {
        let v = i64::from(v.clamp(0, range));
        let scaled = (v * i64::from(out) + i64::from(range) / 2) / i64::from(range);
        (scaled as u32).min(out - 1)
    };
    Some(Absolute {
        x: axis(x, width, ow),
        y: axis(y, height, oh),
        extent_x: ow,
        extent_y: oh,
    })
}

/// A scroll on one axis: the continuous value and, for whole notches, their count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scroll {
    /// Axis units (positive: down or right, as Wayland counts).
    pub value: f64,
    /// Whole notches (same sign), or 0 for a partial notch from a high-resolution
    /// wheel or a trackpad.
    pub discrete: i32,
}

/// A vertical scroll of `amount` 1/120 notches, positive away from the user (up), as
/// Windows and GameStream count. Wayland's vertical axis points down, so the sign
/// flips.
pub fn vertical(amount: i16) -> Scroll {
    notches(-i32::from(amount))
}

/// A horizontal scroll of `amount` 1/120 notches, positive to the right (as Wayland).
pub fn horizontal(amount: i16) -> Scroll {
    notches(i32::from(amount))
}

fn notches(amount: i32) -> Scroll {
    Scroll {
        value: f64::from(amount) * AXIS_PER_NOTCH / f64::from(WHEEL_DELTA),
        discrete: if amount % WHEEL_DELTA == 0 {
            amount / WHEEL_DELTA
        } else {
            0
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_scale_from_the_clients_size_to_the_outputs() {
        // A 1920x1080 client window over a 1280x720 output.
        let a = scale_absolute(960, 540, 1920, 1080, (1280, 720)).unwrap();
        assert_eq!((a.x, a.y, a.extent_x, a.extent_y), (640, 360, 1280, 720));
        let a = scale_absolute(300, 150, 1920, 1080, (1280, 720)).unwrap();
        assert_eq!((a.x, a.y), (200, 100));
        // Same size: unchanged.
        let a = scale_absolute(17, 700, 1280, 720, (1280, 720)).unwrap();
        assert_eq!((a.x, a.y), (17, 700));
        // The edge and beyond land on the last pixel; negatives on the first.
        let a = scale_absolute(1920, 5000, 1920, 1080, (1280, 720)).unwrap();
        assert_eq!((a.x, a.y), (1279, 719));
        let a = scale_absolute(-4, -1, 1920, 1080, (1280, 720)).unwrap();
        assert_eq!((a.x, a.y), (0, 0));
        // A smaller client scales up.
        let a = scale_absolute(320, 180, 640, 360, (1920, 1080)).unwrap();
        assert_eq!((a.x, a.y), (960, 540));
    }

    #[test]
    fn zero_sizes_are_rejected() {
        assert_eq!(scale_absolute(1, 1, 0, 720, (1280, 720)), None);
        assert_eq!(scale_absolute(1, 1, 1280, -3, (1280, 720)), None);
        assert_eq!(scale_absolute(1, 1, 1280, 720, (0, 720)), None);
    }

    #[test]
    fn scroll_directions_and_notches() {
        // One notch up (GameStream +120) is Wayland's -15, one discrete step up.
        assert_eq!(
            vertical(120),
            Scroll {
                value: -15.0,
                discrete: -1
            }
        );
        assert_eq!(
            vertical(-240),
            Scroll {
                value: 30.0,
                discrete: 2
            }
        );
        assert_eq!(
            horizontal(120),
            Scroll {
                value: 15.0,
                discrete: 1
            }
        );
        // Half a notch: a value without a discrete step.
        assert_eq!(
            vertical(60),
            Scroll {
                value: -7.5,
                discrete: 0
            }
        );
        assert_eq!(vertical(i16::MIN).discrete, 0, "no overflow");
    }
}
