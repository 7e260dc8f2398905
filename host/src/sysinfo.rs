//! What the web console reports about the machine: its GPUs and its firewall.
//!
//! Read from sysfs and procfs only (no external commands), with the roots as
//! parameters so the tests can point them at a fake tree.

use std::fs;
use std::path::Path;

use serde::Serialize;

/// A display adapter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gpu {
    /// "NVIDIA", "AMD", "Intel" or the PCI vendor id.
    pub vendor: String,
    /// The model, where the driver tells it (NVIDIA's procfs does); else the PCI ids.
    pub name: String,
    /// The kernel driver bound to it ("nvidia", "amdgpu", "i915", ...).
    pub driver: Option<String>,
}

fn read_trim(path: &Path) -> Option<String> {
    fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// GPUs from `/sys/class/drm` (and NVIDIA's `/proc/driver/nvidia`).
pub fn gpus() -> Vec<Gpu> {
    gpus_in(
        Path::new("/sys/class/drm"),
        Path::new("/proc/driver/nvidia"),
    )
}

/// [`gpus`] with other roots.
pub fn gpus_in(drm: &Path, nvidia_proc: &Path) -> Vec<Gpu> {
    let mut nvidia_models: Vec<String> = fs::read_dir(nvidia_proc.join("gpus"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| read_trim(&e.path().join("information")))
        .filter_map(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("Model:").map(|m| m.trim().to_owned()))
        })
        .collect();
    nvidia_models.reverse();
    let mut cards: Vec<_> = fs::read_dir(drm)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            // cardN only: cardN-HDMI-A-1 and friends are connectors of cardN.
            let n: u32 = name.strip_prefix("card")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    cards.sort();
    cards
        .into_iter()
        .filter_map(|(_, card)| {
            let dev = card.join("device");
            let vendor_id = read_trim(&dev.join("vendor"))?;
            let device_id = read_trim(&dev.join("device")).unwrap_or_default();
            let driver = fs::read_link(dev.join("driver"))
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
            let vendor = match vendor_id.as_str() {
                "0x10de" => "NVIDIA",
                "0x1002" => "AMD",
                "0x8086" => "Intel",
                other => other,
            }
            .to_owned();
            let name = if vendor == "NVIDIA" {
                nvidia_models.pop()
            } else {
                None
            }
            .unwrap_or_else(|| format!("{vendor} GPU (PCI {vendor_id}:{device_id})"));
            Some(Gpu {
                vendor,
                name,
                driver,
            })
        })
        .collect()
}

/// A firewall found on the machine, and how to open the streaming ports in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FirewallHint {
    /// "firewalld", "ufw" or "nftables".
    pub tool: String,
    /// What to run (as root) to let Moonlight in.
    pub command: String,
}

/// Firewalls that look active, with the commands that open `tcp` and `udp` ports.
pub fn firewall_hints(root: &Path, tcp: &[u16], udp: &[u16]) -> Vec<FirewallHint> {
    let mut hints = Vec::new();
    let list = |ports: &[u16], proto: &str, sep: &str| {
        ports
            .iter()
            .map(|p| format!("{p}{sep}{proto}"))
            .collect::<Vec<_>>()
    };
    if root.join("run/firewalld/firewalld.pid").exists() || root.join("var/run/firewalld").is_dir()
    {
        let args: Vec<_> = list(tcp, "tcp", "/")
            .into_iter()
            .chain(list(udp, "udp", "/"))
            .map(|p| format!("--add-port={p}"))
            .collect();
        hints.push(FirewallHint {
            tool: "firewalld".into(),
            command: format!(
                "firewall-cmd --permanent {} && firewall-cmd --reload",
                args.join(" ")
            ),
        });
    }
    let ufw_on = read_trim(&root.join("etc/ufw/ufw.conf"))
        .is_some_and(|c| c.lines().any(|l| l.trim() == "ENABLED=yes"));
    if ufw_on {
        let rules: Vec<_> = list(tcp, "tcp", "/")
            .into_iter()
            .chain(list(udp, "udp", "/"))
            .map(|p| format!("ufw allow {p}"))
            .collect();
        hints.push(FirewallHint {
            tool: "ufw".into(),
            command: rules.join(" && "),
        });
    }
    hints
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn finds_gpus_with_vendor_model_and_driver() {
        let dir = tempfile::tempdir().unwrap();
        let drm = dir.path().join("drm");
        let proc_nv = dir.path().join("nvidia");
        write(&drm.join("card0/device/vendor"), "0x10de\n");
        write(&drm.join("card0/device/device"), "0x2684\n");
        std::os::unix::fs::symlink("/bus/pci/drivers/nvidia", drm.join("card0/device/driver"))
            .unwrap();
        write(&drm.join("card0-HDMI-A-1/status"), "connected\n");
        write(&drm.join("card1/device/vendor"), "0x8086\n");
        write(&drm.join("card1/device/device"), "0x56a0\n");
        write(
            &proc_nv.join("gpus/0000:01:00.0/information"),
            "Model: \t\t NVIDIA GeForce RTX 4090\nIRQ: 100\n",
        );
        let gpus = gpus_in(&drm, &proc_nv);
        assert_eq!(gpus.len(), 2, "{gpus:?}");
        assert_eq!(gpus[0].vendor, "NVIDIA");
        assert_eq!(gpus[0].name, "NVIDIA GeForce RTX 4090");
        assert_eq!(gpus[0].driver.as_deref(), Some("nvidia"));
        assert_eq!(gpus[1].vendor, "Intel");
        assert_eq!(gpus[1].name, "Intel GPU (PCI 0x8086:0x56a0)");
        assert_eq!(gpus[1].driver, None);
        assert!(gpus_in(&dir.path().join("none"), &proc_nv).is_empty());
    }

    #[test]
    fn firewall_hints_name_the_ports() {
        let dir = tempfile::tempdir().unwrap();
        assert!(firewall_hints(dir.path(), &[47984], &[47998]).is_empty());
        write(&dir.path().join("run/firewalld/firewalld.pid"), "1");
        write(&dir.path().join("etc/ufw/ufw.conf"), "ENABLED=yes\n");
        let hints = firewall_hints(dir.path(), &[47984, 47989], &[47998]);
        assert_eq!(hints.len(), 2);
        assert!(hints[0].command.contains("--add-port=47989/tcp"));
        assert!(hints[0].command.contains("--add-port=47998/udp"));
        assert!(hints[1].command.contains("ufw allow 47984/tcp"));
    }
}
