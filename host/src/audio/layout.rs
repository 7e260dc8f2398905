//! Channel positions: the order Moonlight plays a stream's channels in, as PipeWire
//! names them.
//!
//! moonlight-common-c's surround masks (`AUDIO_CONFIGURATION_51_SURROUND` 0x3F,
//! `_71_SURROUND` 0x63F) are WAVE channel masks, so its output order is WAVE order:
//! FL FR C LFE BL BR (SL SR). PipeWire calls the back pair RL RR. The session's sink
//! is created with these positions and the capture asks for them, so the samples the
//! encoder gets are already in the order the client maps: PipeWire's channel mixer
//! reorders by name if a sink ever had another order.

use pipewire::spa::sys as spa_sys;

/// PipeWire's names of a stream's channels, in Moonlight's order.
pub fn position_names(channels: usize) -> &'static [&'static str] {
    match channels {
        6 => &["FL", "FR", "FC", "LFE", "RL", "RR"],
        8 => &["FL", "FR", "FC", "LFE", "RL", "RR", "SL", "SR"],
        _ => &["FL", "FR"],
    }
}

/// The `audio.position` property of a node with `channels` channels.
pub fn position_property(channels: usize) -> String {
    format!("[ {} ]", position_names(channels).join(" "))
}

/// The SPA channel ids of a stream's channels, in Moonlight's order (for a format
/// parameter).
pub fn positions(channels: usize) -> Vec<u32> {
    position_names(channels)
        .iter()
        .map(|name| match *name {
            "FL" => spa_sys::SPA_AUDIO_CHANNEL_FL,
            "FR" => spa_sys::SPA_AUDIO_CHANNEL_FR,
            "FC" => spa_sys::SPA_AUDIO_CHANNEL_FC,
            "LFE" => spa_sys::SPA_AUDIO_CHANNEL_LFE,
            "RL" => spa_sys::SPA_AUDIO_CHANNEL_RL,
            "RR" => spa_sys::SPA_AUDIO_CHANNEL_RR,
            "SL" => spa_sys::SPA_AUDIO_CHANNEL_SL,
            _ => spa_sys::SPA_AUDIO_CHANNEL_SR,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_follow_moonlights_wave_order() {
        assert_eq!(position_property(2), "[ FL FR ]");
        assert_eq!(position_property(6), "[ FL FR FC LFE RL RR ]");
        assert_eq!(position_property(8), "[ FL FR FC LFE RL RR SL SR ]");
        assert_eq!(
            positions(6),
            vec![
                spa_sys::SPA_AUDIO_CHANNEL_FL,
                spa_sys::SPA_AUDIO_CHANNEL_FR,
                spa_sys::SPA_AUDIO_CHANNEL_FC,
                spa_sys::SPA_AUDIO_CHANNEL_LFE,
                spa_sys::SPA_AUDIO_CHANNEL_RL,
                spa_sys::SPA_AUDIO_CHANNEL_RR,
            ]
        );
        // Moonlight's 7.1 mask 0x63F: the six of 5.1, then side left and right.
        assert_eq!(
            positions(8)[6..],
            [spa_sys::SPA_AUDIO_CHANNEL_SL, spa_sys::SPA_AUDIO_CHANNEL_SR]
        );
        assert_eq!(positions(8).len(), 8);
    }
}
