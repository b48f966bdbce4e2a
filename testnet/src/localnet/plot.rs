//! `skew.svg`: the true max skew over time on a log scale, the bound Π as a line, and
//! convergence and quarantine events marked. Plain SVG, readable in any browser.

use std::fmt::Write as _;

/// What to draw.
#[derive(Debug, Clone)]
pub struct Plot<'a> {
    pub title: &'a str,
    /// (seconds since start, skew ns); `None` where fewer than two nodes served time.
    pub series: &'a [(f64, Option<i64>)],
    pub bound_ns: i64,
    pub converged_s: Option<f64>,
    /// (seconds, label).
    pub events: &'a [(f64, String)],
    pub duration_s: f64,
}

const W: f64 = 900.0;
const H: f64 = 420.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn unit(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{} µs", ns / 1e3)
    } else {
        format!("{ns} ns")
    }
}

/// Renders the plot as an SVG document.
pub fn render(p: &Plot<'_>) -> String {
    let values: Vec<f64> = p
        .series
        .iter()
        .filter_map(|&(_, v)| v)
        .map(|v| v.max(1) as f64)
        .collect();
    let lo = values
        .iter()
        .copied()
        .fold(p.bound_ns as f64, f64::min)
        .max(1.0);
    let hi = values.iter().copied().fold(p.bound_ns as f64, f64::max);
    let lo_dec = lo.log10().floor();
    let hi_dec = (hi.log10().ceil()).max(lo_dec + 1.0);
    let t_max = p.duration_s.max(1.0);
    let x = |t: f64| LEFT + (t / t_max).clamp(0.0, 1.0) * (W - LEFT - RIGHT);
    let y = |ns: f64| {
        let f = (ns.max(1.0).log10() - lo_dec) / (hi_dec - lo_dec);
        H - BOTTOM - f.clamp(0.0, 1.0) * (H - TOP - BOTTOM)
    };

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="24" font-size="15" text-anchor="middle">{}</text>"#,
        W / 2.0,
        esc(p.title)
    );
    // Axes and decade grid.
    let mut d = lo_dec;
    while d <= hi_dec + 1e-9 {
        let v = 10f64.powf(d);
        let yy = y(v);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#e5e5e5"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            yy + 4.0,
            unit(v)
        );
        d += 1.0;
    }
    let ticks = 8;
    for i in 0..=ticks {
        let t = t_max * f64::from(i) / f64::from(ticks);
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{:.0} s</text>"#,
            x(t),
            H - BOTTOM + 18.0,
            t
        );
    }
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#333"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{:.1}" stroke="#333"/>"##,
        H - BOTTOM,
        W - RIGHT,
        H - BOTTOM,
        H - BOTTOM
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">time since start</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        H - 18.0
    );
    let _ = writeln!(
        s,
        r#"<text x="18" y="{:.1}" transform="rotate(-90 18 {:.1})" text-anchor="middle">true max skew among correct serving nodes (log)</text>"#,
        (TOP + H - BOTTOM) / 2.0,
        (TOP + H - BOTTOM) / 2.0
    );
    // The bound.
    let yb = y(p.bound_ns as f64);
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" y1="{yb:.1}" x2="{:.1}" y2="{yb:.1}" stroke="#c62828" stroke-dasharray="6 4"/><text x="{:.1}" y="{:.1}" fill="#c62828" text-anchor="end">bound Π = {}</text>"##,
        W - RIGHT,
        W - RIGHT - 4.0,
        yb - 5.0,
        unit(p.bound_ns as f64)
    );
    // Events.
    if let Some(c) = p.converged_s {
        let xc = x(c);
        let _ = writeln!(
            s,
            r##"<line x1="{xc:.1}" y1="{TOP}" x2="{xc:.1}" y2="{:.1}" stroke="#2e7d32" stroke-dasharray="3 3"/><text x="{:.1}" y="{:.1}" fill="#2e7d32">converged {c:.0} s</text>"##,
            H - BOTTOM,
            xc + 4.0,
            TOP + 12.0
        );
    }
    for (i, (t, label)) in p.events.iter().enumerate() {
        let xe = x(*t);
        let _ = writeln!(
            s,
            r##"<line x1="{xe:.1}" y1="{TOP}" x2="{xe:.1}" y2="{:.1}" stroke="#ef6c00" stroke-dasharray="2 4"/><text x="{:.1}" y="{:.1}" fill="#ef6c00">{}</text>"##,
            H - BOTTOM,
            xe + 4.0,
            TOP + 26.0 + 14.0 * (i % 6) as f64,
            esc(label)
        );
    }
    // The series, broken where there was no value.
    let mut path = String::new();
    let mut pen_down = false;
    for &(t, v) in p.series {
        match v {
            Some(ns) => {
                let _ = write!(
                    path,
                    "{}{:.1},{:.1} ",
                    if pen_down { "L" } else { "M" },
                    x(t),
                    y(ns.max(1) as f64)
                );
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    let _ = writeln!(
        s,
        r##"<path d="{}" fill="none" stroke="#1565c0" stroke-width="1.6"/>"##,
        path.trim_end()
    );
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_well_formed_document() {
        let series = [
            (0.0, None),
            (1.0, Some(5_000_000_000)),
            (2.0, Some(300_000)),
            (3.0, Some(250_000)),
        ];
        let events = [(2.5, "node-7 quarantined".to_owned())];
        let svg = render(&Plot {
            title: "250 nodes <mixed>",
            series: &series,
            bound_ns: 200_000_000,
            converged_s: Some(2.0),
            events: &events,
            duration_s: 3.0,
        });
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("bound Π = 200 ms"));
        assert!(svg.contains("&lt;mixed&gt;"));
        assert!(svg.contains("node-7 quarantined"));
        assert_eq!(svg.matches("<path").count(), 1);
    }
}
