//! CPU time, wake-ups and peak memory of a child process, from `/proc` (Linux). Read
//! before the process is stopped; `None` where `/proc` is not available.

/// Clock ticks per second for `/proc/PID/stat` (USER_HZ; 100 on every Linux we run on).
const TICKS_PER_S: f64 = 100.0;

/// User + system CPU seconds of process `pid`.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces: split after its closing paren.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the full line: 11 and 12 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_S)
}

/// Voluntary context switches of all of process `pid`'s threads: each is a thread that
/// went to sleep and was woken again. On a shared VM a wake-up costs more than an
/// exchange's own work, and unlike CPU time the count barely moves with the host's speed.
pub fn voluntary_switches(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0;
    for task in tasks.flatten() {
        // A thread that ended between listing and reading counts nothing.
        let Ok(text) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        if let Some(n) = text
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            total += n;
        }
    }
    Some(total)
}

/// Peak resident set size (VmHWM) of process `pid`, in bytes.
pub fn max_rss_bytes(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_process() {
        let pid = std::process::id();
        if std::path::Path::new("/proc/self/stat").exists() {
            assert!(cpu_seconds(pid).is_some());
            assert!(max_rss_bytes(pid).unwrap() > 0);
            let before = voluntary_switches(pid).expect("switches");
            std::thread::sleep(std::time::Duration::from_millis(2));
            assert!(
                voluntary_switches(pid).expect("switches") > before,
                "a sleep is one"
            );
        }
    }
}
