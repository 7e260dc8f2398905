//! The 10-bit converter against ITU-T H.273's formula.
use super::*;

/// ITU-T H.273 at 10 bits, in floating point: (Y, Cb, Cr) for 8-bit R, G, B,
/// clipped to the 10-bit range as H.273 does (full-range red's Cr is 1023.5).
/// Ties round up, as H.273's Round() does for these positive values; the
/// epsilon keeps float error (0.49999... for an exact 0.5) from deciding them.
fn reference(kr: f64, kb: f64, full: bool, rgb: [u8; 3]) -> [u16; 3] {
    let [r, g, b] = rgb.map(|c| f64::from(c) / 255.0);
    let kg = 1.0 - kr - kb;
    let y = kr * r + kg * g + kb * b;
    let pb = (b - y) / (2.0 * (1.0 - kb));
    let pr = (r - y) / (2.0 * (1.0 - kr));
    let round = |x: f64| (x + 0.5 + 1e-9).floor().clamp(0.0, 1023.0) as u16;
    let (ys, yo, cs) = if full {
        (1023.0, 0.0, 1023.0)
    } else {
        (876.0, 64.0, 896.0)
    };
    [
        round(ys * y + yo),
        round(cs * pb + 512.0),
        round(cs * pr + 512.0),
    ]
}

const COLOURS: [[u8; 3]; 12] = [
    [0, 0, 0],
    [255, 255, 255],
    [255, 0, 0],
    [0, 255, 0],
    [0, 0, 255],
    [255, 255, 0],
    [0, 255, 255],
    [255, 0, 255],
    [128, 128, 128],
    [191, 191, 191],
    [40, 40, 40],
    [191, 0, 191],
];

/// Converts a 4x2 picture of one colour in `layout` and returns (Y, Cb, Cr).
fn convert(rgb: [u8; 3], order: Order, m: &Matrix10, p010: bool) -> [u16; 3] {
    let px = match order {
        Order::Bgrx => [rgb[2], rgb[1], rgb[0], 0xff],
        Order::Rgbx => [rgb[0], rgb[1], rgb[2], 0xff],
    };
    let src: Vec<u8> = px.iter().copied().cycle().take(4 * 4 * 2).collect();
    let mut y = vec![0u16; 8];
    let mut u = vec![0u16; 2];
    let mut v = vec![0u16; 2];
    let mut uv = vec![0u16; 4];
    let chroma = if p010 {
        Planes10::P010(&mut uv)
    } else {
        Planes10::Planar {
            u: &mut u,
            v: &mut v,
        }
    };
    let band = Band10 {
        y: &mut y,
        y_stride: 4,
        chroma,
        c_stride: if p010 { 4 } else { 2 },
        width: 4,
        rows: 2,
    };
    rgb_to_10bit(&src, 16, order, band, m);
    assert!(y.iter().all(|&s| s == y[0]), "one colour, one luma");
    if p010 {
        assert_eq!(uv[0..2], uv[2..4]);
        [y[0] >> 6, uv[0] >> 6, uv[1] >> 6]
    } else {
        assert_eq!((u[0], v[0]), (u[1], v[1]));
        [y[0], u[0], v[0]]
    }
}

#[test]
fn known_colours_match_the_h273_formula_in_every_matrix_range_and_layout() {
    for (kr, kb) in [(0.299, 0.114), (0.2126, 0.0722), (0.2627, 0.0593)] {
        for full in [false, true] {
            let m = Matrix10::new(kr, kb, full);
            for rgb in COLOURS {
                let want = reference(kr, kb, full, rgb);
                for order in [Order::Bgrx, Order::Rgbx] {
                    for p010 in [false, true] {
                        let got = convert(rgb, order, &m, p010);
                        assert_eq!(
                            got, want,
                            "Kr {kr} full {full} {rgb:?} {order:?} p010 {p010}"
                        );
                    }
                }
            }
        }
    }
    // The anchors of the ranges, spelled out.
    assert_eq!(reference(0.2126, 0.0722, false, [0, 0, 0]), [64, 512, 512]);
    assert_eq!(
        reference(0.2126, 0.0722, false, [255, 255, 255]),
        [940, 512, 512]
    );
    assert_eq!(
        reference(0.2126, 0.0722, true, [255, 255, 255]),
        [1023, 512, 512]
    );
}

#[test]
fn every_8bit_grey_and_a_sweep_of_colours_are_within_one_code_value() {
    let m = Matrix10::bt709(false);
    for c in 0..=255u8 {
        assert_eq!(
            convert([c, c, c], Order::Bgrx, &m, false),
            reference(0.2126, 0.0722, false, [c, c, c])
        );
    }
    for r in (0..=255u8).step_by(17) {
        for g in (0..=255u8).step_by(51) {
            for b in (0..=255u8).step_by(15) {
                let got = convert([r, g, b], Order::Rgbx, &m, false);
                let want = reference(0.2126, 0.0722, false, [r, g, b]);
                for i in 0..3 {
                    assert!(
                        got[i].abs_diff(want[i]) <= 1,
                        "{:?}: {got:?} vs {want:?}",
                        [r, g, b]
                    );
                }
            }
        }
    }
}

#[test]
fn nv12_widens_exactly() {
    assert_eq!(
        (widen(16, false), widen(235, false), widen(128, false)),
        (64, 940, 512)
    );
    assert_eq!(
        (widen(0, true), widen(255, true), widen(128, true)),
        (0, 1023, 514)
    );
    let ysrc = [16u8, 235, 100, 200, 17, 18, 19, 20];
    let uvsrc = [128u8, 240, 16, 64];
    for p010 in [false, true] {
        let mut y = vec![0u16; 8];
        let (mut u, mut v, mut uv) = (vec![0u16; 2], vec![0u16; 2], vec![0u16; 4]);
        let chroma = if p010 {
            Planes10::P010(&mut uv)
        } else {
            Planes10::Planar {
                u: &mut u,
                v: &mut v,
            }
        };
        let band = Band10 {
            y: &mut y,
            y_stride: 4,
            chroma,
            c_stride: if p010 { 4 } else { 2 },
            width: 4,
            rows: 2,
        };
        nv12_to_10bit(&ysrc, 4, &uvsrc, 4, false, band);
        let s = if p010 { 6 } else { 0 };
        assert_eq!(y, ysrc.map(|v| u16::from(v) << (2 + s)).to_vec());
        if p010 {
            assert_eq!(uv, uvsrc.map(|v| u16::from(v) << 8).to_vec());
        } else {
            assert_eq!((u, v), (vec![512, 64], vec![960, 256]));
        }
    }
}
