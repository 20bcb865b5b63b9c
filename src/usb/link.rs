//! The USB link behind errors 4013, 4014 and 4005 ("the device lost communication").
//!
//! Apple's articles on these errors send people through the same steps: update the
//! computer, connect the device directly to the computer (not through a hub, a keyboard
//! or a display), try another Apple cable and another port, restart both, try Recovery
//! mode, try another computer — and if it still fails, the device may need service.
//! Of those causes ipswcheck can *see* two, without opening the device: the speed the
//! port negotiated (a phone at 12 Mbit/s full speed instead of 480 Mbit/s high speed is
//! on a bad cable, a worn connector or a USB 1.1 port or hub) and the hubs in the port
//! chain. It cannot see the cable's quality (a cable that negotiated 480 Mbit/s can still
//! drop packets under the load of a restore), the phone's NAND storage or audio chip
//! (hardware faults that end in 4013/4014 too), or security software on the computer.

use serde::Serialize;

use super::{AttachedDevice, Speed};
use crate::render::escape;

/// What the link looks like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkAssessment {
    pub speed: Option<Speed>,
    /// The hubs between the computer and the device (`vvvv:pppp name`), nearest the
    /// computer first.
    pub hubs: Vec<String>,
    /// Below high speed: the link itself is suspect.
    pub slow: bool,
    /// `bus 1, port 2.1`.
    pub location: String,
}

impl LinkAssessment {
    pub fn of(device: &AttachedDevice) -> Self {
        LinkAssessment {
            speed: device.usb.speed,
            hubs: device
                .hubs
                .iter()
                .map(|h| {
                    let name = h
                        .product
                        .as_deref()
                        .map(|p| format!(" \"{}\"", escape(p)))
                        .unwrap_or_default();
                    format!(
                        "{:04x}:{:04x}{name}{}",
                        h.vendor_id,
                        h.product_id,
                        h.speed
                            .map(|s| format!(", {}", s.describe()))
                            .unwrap_or_default()
                    )
                })
                .collect(),
            slow: device.usb.speed.is_some_and(|s| s < Speed::High),
            location: device.usb.location(),
        }
    }

    /// Whether anything seen is a known cause of 4013/4014/4005.
    pub fn suspect(&self) -> bool {
        self.slow || !self.hubs.is_empty()
    }

    /// One line for a check's report: speed and hubs.
    pub fn line(&self) -> String {
        let speed = match self.speed {
            Some(s) => s.describe().to_owned(),
            None => "speed not reported by the system".to_owned(),
        };
        let hubs = match self.hubs.len() {
            0 => "no hub between it and the computer".to_owned(),
            1 => "through 1 hub".to_owned(),
            n => format!("through {n} hubs"),
        };
        let mut line = format!("USB link: {speed}, {hubs} ({})", self.location);
        if self.slow {
            line.push_str(
                " — below 480 Mbit/s: a bad cable, connector or USB 1.1 port/hub; restores on \
                 such a link fail with 4013/4014/4005",
            );
        } else if !self.hubs.is_empty() {
            line.push_str(" — Apple advises connecting directly to the computer for a restore");
        }
        line
    }

    /// What to do, concretely, for what was seen (`None` when nothing was).
    pub fn advice(&self) -> Option<String> {
        let mut steps = Vec::new();
        if self.slow {
            steps.push("use another cable (Apple's, or MFi-certified) and another USB port; a 12 Mbit/s link is the cable, the connector's lint, or a USB 1.1 port or hub");
        }
        if !self.hubs.is_empty() {
            steps.push("connect the device directly to a port of the computer, not through a hub, keyboard or display");
        }
        (!steps.is_empty()).then(|| steps.join("; "))
    }
}

/// Apple's steps for 4013/4014/4005, in order: what to try when a restore loses the
/// device although nothing above looked wrong.
pub const APPLE_STEPS: [&str; 6] = [
    "update the computer (macOS, or Apple Devices/iTunes on Windows)",
    "connect the device directly to the computer, not through a hub, keyboard or display",
    "try another Apple USB cable and another USB port",
    "restart the computer and the device",
    "put the device in Recovery mode and restore again",
    "try another computer; if it fails there too, the device may need service (a hardware fault such as NAND storage)",
];

/// What can never be seen from USB: said in every `doctor --usb`.
pub const CANNOT_SEE: &str = "the cable's quality (a cable that \
    negotiated 480 Mbit/s can still drop packets under a restore's load), the device's NAND \
    storage or audio chip (hardware faults that also end in 4013/4014), or security software \
    on this computer";

/// `ipswcheck doctor --usb`: every Apple device found, its mode and link, then Apple's
/// steps and what cannot be seen. Returns the text and whether any link looked suspect.
pub fn doctor_text(devices: &[AttachedDevice], looked: &str) -> (String, bool) {
    let mut out = format!("USB ({looked}):\n");
    if devices.is_empty() {
        out.push_str(
            "  no iPhone, iPad or iPod found in any mode (normal, Recovery, DFU); check the \
             cable and that the device is on\n",
        );
    }
    let mut suspect = false;
    for d in devices {
        let link = LinkAssessment::of(d);
        suspect |= link.suspect();
        out.push_str(&format!("  {}\n", d.describe()));
        out.push_str(&format!(
            "    speed: {}{}\n",
            link.speed
                .map_or("not reported by the system", Speed::describe),
            if link.slow {
                " — too slow: a bad cable, connector or USB 1.1 port/hub (errors 4013/4014/4005)"
            } else if link.speed.is_some() {
                " — as it should be"
            } else {
                ""
            }
        ));
        if link.hubs.is_empty() {
            out.push_str(&format!(
                "    port chain: {} — no hub between the device and the computer (a hub \
                 built into the computer does not show)\n",
                link.location
            ));
        } else {
            out.push_str(&format!(
                "    port chain: {} — through {}: {}\n",
                link.location,
                if link.hubs.len() == 1 {
                    "1 hub".to_owned()
                } else {
                    format!("{} hubs", link.hubs.len())
                },
                link.hubs.join(" → ")
            ));
        }
        if let Some(e) = &d.lockdown_error {
            out.push_str(&format!(
                "    model: unknown in normal mode ({}) — put it in Recovery or pass --device\n",
                escape(e)
            ));
        }
        if let Some(advice) = link.advice() {
            out.push_str(&format!("    do: {advice}\n"));
        }
    }
    out.push_str("If a restore fails with 4013, 4014 or 4005 (\"the device lost communication\"), Apple's steps, in order:\n");
    for (i, step) in APPLE_STEPS.iter().enumerate() {
        out.push_str(&format!("  {}. {step}\n", i + 1));
    }
    out.push_str(&format!(
        "What ipswcheck can see: speed, hubs, mode. What it cannot: {CANNOT_SEE}.\n"
    ));
    (out, suspect)
}
