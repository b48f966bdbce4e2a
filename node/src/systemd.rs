//! systemd integration (`Type=notify`): `READY=1` once the node serves time, `STATUS=`
//! with its state, and watchdog pings from the driver loop, so a wedged loop gets the
//! node restarted. Does nothing when not started by systemd (`NOTIFY_SOCKET` unset).

use std::time::Duration;

use sd_notify::NotifyState;

#[derive(Debug)]
pub struct Systemd {
    enabled: bool,
    ready_sent: bool,
}

impl Systemd {
    pub fn from_env() -> Self {
        Systemd {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
            ready_sent: false,
        }
    }

    /// How often to ping the watchdog (half its timeout), if systemd asked for it.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        if !self.enabled {
            return None;
        }
        sd_notify::watchdog_enabled().map(|t| t / 2)
    }

    pub fn status(&mut self, text: &str, serving: bool) {
        if !self.enabled {
            return;
        }
        let mut states = vec![NotifyState::Status(text)];
        if serving && !self.ready_sent {
            states.push(NotifyState::Ready);
            self.ready_sent = true;
        }
        if let Err(e) = sd_notify::notify(&states) {
            tracing::debug!(error = %e, "sd_notify failed");
        }
    }

    pub fn watchdog(&self) {
        if self.enabled {
            let _ = sd_notify::notify(&[NotifyState::Watchdog]);
        }
    }

    pub fn stopping(&self) {
        if self.enabled {
            let _ = sd_notify::notify(&[NotifyState::Stopping]);
        }
    }
}
