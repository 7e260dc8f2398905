//! Unit tests of the gamescope backend: its command line for each `--help` variant,
//! version parsing, and node selection among several gamescope nodes.
use super::*;

const HELP_CURRENT: &str = "usage: gamescope [options...] -- [app...]\n\
Options:\n  --help                         show help message\n\
  -W, --output-width             output width\n\
  --backend                      select rendering backend\n\
                                 auto => autodetect (default)\n\
                                 drm => use DRM backend (standalone display session)\n\
                                 sdl => use SDL backend (nested sessions)\n\
                                 headless => use headless backend (no window, no DRM output)\n\
                                 wayland => use Wayland backend\n";
const HELP_312: &str = "usage: gamescope [options...] -- [app...]\n\
  -W, --output-width             output width\n\
  --headless                     use headless backend (no window, no DRM output)\n\
  --nested-refresh               game refresh rate (frames per second)\n";
const HELP_311: &str = "usage: gamescope [options...] -- [app...]\n\
  -W, --output-width             output width\n\
  -e, --steam                    enable Steam integration\n";

fn mode() -> Mode {
    Mode {
        width: 1920,
        height: 1080,
        fps: 60,
    }
}

#[test]
fn command_line_for_each_help_variant() {
    assert_eq!(headless_flag(HELP_CURRENT), Some(HeadlessFlag::Backend));
    assert_eq!(headless_flag(HELP_312), Some(HeadlessFlag::Legacy));
    assert_eq!(headless_flag(HELP_311), None);
    let extra = vec!["--prefer-vk-device".to_owned(), "1002:73bf".to_owned()];
    assert_eq!(
        command_line(
            HeadlessFlag::Backend,
            mode(),
            &extra,
            Some("steam -gamepadui")
        )
        .join(" "),
        "--backend headless -W 1920 -H 1080 -w 1920 -h 1080 -r 60 \
         --prefer-vk-device 1002:73bf -- /bin/sh -c steam -gamepadui"
    );
    let legacy = command_line(HeadlessFlag::Legacy, mode(), &[], Some("vkcube"));
    assert_eq!(legacy[0], "--headless");
    assert_eq!(
        legacy.last().unwrap(),
        "vkcube",
        "the command is one argument of sh -c"
    );
    assert!(!command_line(HeadlessFlag::Legacy, mode(), &[], None).contains(&"--".to_owned()));
}

#[test]
fn versions_parse() {
    assert_eq!(
        parse_version("gamescope version 3.14.2 (gcc 13.2.1)").as_deref(),
        Some("3.14.2")
    );
    assert_eq!(
        parse_version("[gamescope] [Info]  console: gamescope version v3.12.5").as_deref(),
        Some("3.12.5")
    );
    assert_eq!(
        parse_version("gamescope: unrecognized option '--version'"),
        None
    );
}

const DUMP: &str = r#"[
  {"id": 30, "type": "PipeWire:Interface:Client", "info": {"props": {"application.process.id": 4000, "pipewire.sec.pid": 4000}}},
  {"id": 31, "type": "PipeWire:Interface:Client", "info": {"props": {"pipewire.sec.pid": 5000}}},
  {"id": 32, "type": "PipeWire:Interface:Client", "info": {"props": {"application.process.id": "6000"}}},
  {"id": 50, "type": "PipeWire:Interface:Node", "info": {"props": {"node.name": "gamescope", "media.class": "Video/Source", "client.id": 30}}},
  {"id": 51, "type": "PipeWire:Interface:Node", "info": {"props": {"node.name": "gamescope", "media.class": "Video/Source", "client.id": 31}}},
  {"id": 52, "type": "PipeWire:Interface:Node", "info": {"props": {"node.name": "gamescope", "media.class": "Stream/Input/Audio", "client.id": 32}}},
  {"id": 53, "type": "PipeWire:Interface:Node", "info": {"props": {"node.name": "gamescope", "media.class": "Video/Source", "application.process.id": 6000}}},
  {"id": 54, "type": "PipeWire:Interface:Node", "info": {"props": {"node.name": "xdg-desktop-portal-wlr", "media.class": "Video/Source", "client.id": 99}}}
]"#;

#[test]
fn picks_this_gamescopes_node_among_several() {
    let nodes = parse_pw_dump(DUMP);
    assert_eq!(nodes.len(), 5);
    assert_eq!(select_node(&nodes, 4000), Some(50));
    assert_eq!(
        select_node(&nodes, 5000),
        Some(51),
        "pid from pipewire.sec.pid"
    );
    assert_eq!(
        select_node(&nodes, 6000),
        Some(53),
        "audio nodes are skipped"
    );
    assert_eq!(
        select_node(&nodes, 7000),
        None,
        "never just the first gamescope node"
    );
    assert!(parse_pw_dump("not json").is_empty());
}
