//! VAAPI's video processor (VPP) for RGB DMA-BUFs: the compositor's buffer is mapped
//! onto an RGB VAAPI surface (no copy), and FFmpeg's `scale_vaapi` filter converts it
//! to an NV12 surface of the encoder's size on the GPU (colour conversion and, where
//! the capture differs from the stream, scaling). The encoder then reads that surface:
//! the CPU never touches a pixel.
//!
//! The filter runs on the encoder's own VAAPI device (the graph takes it from the
//! mapped frames' context), so its output surfaces are the encoder's to read.

use anyhow::{Context, Result, bail};
use ffmpeg::ffi;
use ffmpeg_next as ffmpeg;

use super::cuda::HwRef;
use crate::capture::PixelFormat;

/// The VAAPI surface format an RGB DMA-BUF is mapped as; `None` for formats the VPP
/// path does not take (NV12 maps onto an encoder surface directly).
pub fn rgb_sw_format(format: PixelFormat) -> Option<ffi::AVPixelFormat> {
    match format {
        PixelFormat::Bgrx => Some(ffi::AVPixelFormat::AV_PIX_FMT_BGR0),
        PixelFormat::Bgra => Some(ffi::AVPixelFormat::AV_PIX_FMT_BGRA),
        PixelFormat::Rgbx => Some(ffi::AVPixelFormat::AV_PIX_FMT_RGB0),
        PixelFormat::Nv12 => None,
    }
}

/// The `scale_vaapi` arguments: NV12 (P010 for a 10-bit stream) at the encoder's
/// size, in the client's matrix and range (`out_color_matrix`, `out_range`).
pub fn filter_spec(
    width: u32,
    height: u32,
    bt709: bool,
    full_range: bool,
    ten_bit: bool,
) -> String {
    format!(
        "scale_vaapi=w={width}:h={height}:format={}:out_color_matrix={}:out_range={}",
        if ten_bit { "p010" } else { "nv12" },
        if bt709 { "bt709" } else { "bt601" },
        if full_range { "full" } else { "limited" }
    )
}

/// The `buffer` source's arguments for VAAPI frames of `width` x `height`.
pub fn source_args(width: u32, height: u32, fps: u32) -> String {
    format!(
        "video_size={width}x{height}:pix_fmt={}:time_base=1/{}:pixel_aspect=1/1",
        ffi::AVPixelFormat::AV_PIX_FMT_VAAPI as i32,
        fps.max(1)
    )
}

fn check(ret: libc::c_int, what: &str) -> Result<()> {
    if ret < 0 {
        bail!("{what}: {}", ffmpeg::Error::from(ret));
    }
    Ok(())
}

/// One VPP conversion set up for captures of one format and size.
pub struct Vpp {
    graph: ffmpeg::filter::Graph,
    /// The RGB surfaces' frames context (what mapped DMA-BUFs belong to).
    rgb_frames: HwRef,
    /// The input it was set up for: format and size.
    pub key: (PixelFormat, u32, u32),
}

impl std::fmt::Debug for Vpp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vpp")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// What the output should be.
#[derive(Debug, Clone, Copy)]
pub struct VppOutput {
    /// Encoder width.
    pub width: u32,
    /// Encoder height.
    pub height: u32,
    /// Frames a second (the source's time base).
    pub fps: u32,
    /// BT.709 (else BT.601).
    pub bt709: bool,
    /// Full range.
    pub full_range: bool,
    /// P010 output, for a 10-bit stream.
    pub ten_bit: bool,
}

impl Vpp {
    /// Sets up VPP on `device` (the encoder's VAAPI device) for `format` captures of
    /// `width` x `height`.
    pub fn open(
        device: &HwRef,
        format: PixelFormat,
        width: u32,
        height: u32,
        out: VppOutput,
    ) -> Result<Self> {
        let sw = rgb_sw_format(format)
            .with_context(|| format!("{format:?} does not go through the video processor"))?;
        // SAFETY: a frames context on the encoder's device, plain fields set before init;
        // owned by `rgb_frames` (released on every path out).
        let rgb_frames = unsafe {
            let frames = HwRef(ffi::av_hwframe_ctx_alloc(device.0));
            if frames.0.is_null() {
                bail!("allocating VAAPI RGB frames");
            }
            let fc = (*frames.0).data.cast::<ffi::AVHWFramesContext>();
            (*fc).format = ffi::AVPixelFormat::AV_PIX_FMT_VAAPI;
            (*fc).sw_format = sw;
            (*fc).width = width as libc::c_int;
            (*fc).height = height as libc::c_int;
            check(
                ffi::av_hwframe_ctx_init(frames.0),
                "creating VAAPI RGB frames",
            )?;
            frames
        };
        let mut graph = ffmpeg::filter::Graph::new();
        let buffer = ffmpeg::filter::find("buffer").context("no buffer filter")?;
        let sink = ffmpeg::filter::find("buffersink").context("no buffersink filter")?;
        let mut src = graph
            .add(&buffer, "in", &source_args(width, height, out.fps))
            .context("creating the VPP source")?;
        // SAFETY: parameters allocated by FFmpeg, filled with a new reference to our
        // frames context (the source takes its own), and freed after.
        unsafe {
            let par = ffi::av_buffersrc_parameters_alloc();
            if par.is_null() {
                bail!("allocating the VPP source parameters");
            }
            (*par).format = ffi::AVPixelFormat::AV_PIX_FMT_VAAPI as libc::c_int;
            (*par).hw_frames_ctx = rgb_frames.0;
            let ret = ffi::av_buffersrc_parameters_set(src.as_mut_ptr(), par);
            ffi::av_free(par.cast());
            check(ret, "configuring the VPP source")?;
        }
        graph
            .add(&sink, "out", "")
            .context("creating the VPP sink")?;
        graph
            .output("in", 0)?
            .input("out", 0)?
            .parse(&filter_spec(
                out.width,
                out.height,
                out.bt709,
                out.full_range,
                out.ten_bit,
            ))
            .context("building the VPP filter (scale_vaapi)")?;
        graph
            .validate()
            .context("configuring the VPP filter graph")?;
        Ok(Self {
            graph,
            rgb_frames,
            key: (format, width, height),
        })
    }

    /// The frames context mapped RGB DMA-BUFs must belong to.
    pub fn rgb_frames(&self) -> *mut ffi::AVBufferRef {
        self.rgb_frames.0
    }

    /// Converts the mapped RGB surface `rgb` into the NV12 surface `out`.
    pub fn process(
        &mut self,
        rgb: &ffmpeg::frame::Video,
        out: &mut ffmpeg::frame::Video,
    ) -> Result<()> {
        self.graph
            .get("in")
            .context("the VPP source is gone")?
            .source()
            .add(rgb)
            .context("feeding the video processor")?;
        self.graph
            .get("out")
            .context("the VPP sink is gone")?
            .sink()
            .frame(out)
            .context("taking the video processor's NV12 surface")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgb_formats_map_to_vaapi_surface_formats_and_nv12_bypasses() {
        use ffi::AVPixelFormat as F;
        assert_eq!(rgb_sw_format(PixelFormat::Bgrx), Some(F::AV_PIX_FMT_BGR0));
        assert_eq!(rgb_sw_format(PixelFormat::Bgra), Some(F::AV_PIX_FMT_BGRA));
        assert_eq!(rgb_sw_format(PixelFormat::Rgbx), Some(F::AV_PIX_FMT_RGB0));
        assert_eq!(rgb_sw_format(PixelFormat::Nv12), None);
    }

    #[test]
    fn the_filter_follows_the_clients_colour_and_the_encoders_size() {
        assert_eq!(
            filter_spec(1920, 1080, true, false, false),
            "scale_vaapi=w=1920:h=1080:format=nv12:out_color_matrix=bt709:out_range=limited"
        );
        assert!(filter_spec(1280, 720, false, true, false).ends_with("bt601:out_range=full"));
        assert!(filter_spec(1280, 720, true, false, true).contains(":format=p010:"));
        assert!(source_args(2560, 1440, 60).starts_with("video_size=2560x1440:pix_fmt="));
    }

    #[test]
    fn this_ffmpeg_has_the_filters_vpp_needs() {
        ffmpeg::init().unwrap();
        for name in ["buffer", "buffersink", "scale_vaapi"] {
            assert!(ffmpeg::filter::find(name).is_some(), "{name} missing");
        }
    }
}
