//! The throughput charts: stacked bars (succeeded, failed) drawn as SVG on
//! the server, with axes, gridlines, a legend and a tooltip per bar.

use chrono::{DateTime, TimeDelta, Utc};
use jobs::Throughput;
use maud::{Markup, html};

use super::number;

/// Attempts that ended in `minutes` minutes from `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Bucket {
    pub(crate) start: DateTime<Utc>,
    pub(crate) minutes: i64,
    pub(crate) processed: u64,
    pub(crate) failed: u64,
}

/// `series` (per minute, oldest first) summed into buckets of `size`
/// minutes, aligned on the clock (a 30-minute bucket starts at :00 or :30
/// UTC); the first and last may be partial.
pub(crate) fn buckets(series: &[Throughput], size: usize) -> Vec<Bucket> {
    let size = size.max(1) as i64;
    let key = |t: &Throughput| (t.minute.timestamp() / 60).div_euclid(size);
    series.chunk_by(|a, b| key(a) == key(b)).map(sum).collect()
}

fn sum(minutes: &[Throughput]) -> Bucket {
    Bucket {
        start: minutes.first().map_or_else(Utc::now, |t| t.minute),
        minutes: minutes.len() as i64,
        processed: minutes.iter().map(|t| t.processed).sum(),
        failed: minutes.iter().map(|t| t.failed).sum(),
    }
}

/// The smallest 1, 2 or 5 × 10ⁿ step whose four ticks reach `max`.
fn nice_step(max: u64) -> u64 {
    let target = max.div_ceil(4).max(1);
    let mut magnitude = 1u64;
    loop {
        for m in [1, 2, 5] {
            let step = m * magnitude;
            if step >= target {
                return step;
            }
        }
        magnitude = magnitude.saturating_mul(10);
    }
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 190.0;
const LEFT: f64 = 46.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 26.0;

fn f(x: f64) -> String {
    format!("{x:.1}")
}

/// One chart of `buckets`, a time label under each bar that starts at a
/// multiple of `label_minutes` (UTC).
pub(crate) fn chart(caption: &str, buckets: &[Bucket], label_minutes: i64) -> Markup {
    let max = buckets.iter().map(|b| b.processed).max().unwrap_or(0);
    let step = nice_step(max);
    let top = step * 4;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slot = plot_w / buckets.len().max(1) as f64;
    let bar = (slot * 0.72).max(1.0);
    let y = |v: u64| TOP + plot_h - (v as f64 / top as f64) * plot_h;
    let processed: u64 = buckets.iter().map(|b| b.processed).sum();
    let failed: u64 = buckets.iter().map(|b| b.failed).sum();
    let label = format!(
        "{caption}: {} processed, {} failed",
        number(processed),
        number(failed)
    );
    html! {
        figure.chart {
            figcaption {
                span.title { (caption) }
                span.legend {
                    span.key.ok { "Succeeded" }
                    span.key.fail { "Failed" }
                    span.totals {
                        strong { (number(processed)) } " processed · "
                        strong { (number(failed)) } " failed"
                    }
                }
            }
            svg viewBox={"0 0 " (WIDTH) " " (HEIGHT)} role="img" aria-label=(label)
                class="plot" {
                // Gridlines and the value axis.
                @for tick in 0..=4u64 {
                    @let v = tick * step;
                    line.grid.axis[tick == 0] x1=(f(LEFT)) x2=(f(WIDTH - RIGHT)) y1=(f(y(v))) y2=(f(y(v))) {}
                    text.ylabel x=(f(LEFT - 6.0)) y=(f(y(v) + 4.0)) text-anchor="end" { (number(v)) }
                }
                @for (i, b) in buckets.iter().enumerate() {
                    @let x = LEFT + i as f64 * slot + (slot - bar) / 2.0;
                    @let ok = b.processed.saturating_sub(b.failed);
                    g.bar {
                        title { (bar_title(b)) }
                        // An invisible full-height target, so the tooltip
                        // shows on empty minutes too.
                        rect.hit x=(f(LEFT + i as f64 * slot)) y=(f(TOP)) width=(f(slot)) height=(f(plot_h)) {}
                        @if ok > 0 {
                            rect.ok x=(f(x)) y=(f(y(ok))) width=(f(bar)) height=(f(y(0) - y(ok))) {}
                        }
                        @if b.failed > 0 {
                            rect.fail x=(f(x)) y=(f(y(b.processed.max(b.failed)))) width=(f(bar))
                                height=(f(y(ok) - y(b.processed.max(b.failed)))) {}
                        }
                    }
                    // Not too close to "now" at the right end.
                    @if labelled(b, label_minutes) && (i as f64) < buckets.len() as f64 * 0.9 {
                        text.xlabel x=(f(LEFT + i as f64 * slot)) y=(f(HEIGHT - 8.0)) text-anchor="start" {
                            (b.start.format("%H:%M"))
                        }
                    }
                }
                text.xlabel x=(f(WIDTH - RIGHT)) y=(f(HEIGHT - 8.0)) text-anchor="end" { "now" }
                @if processed == 0 {
                    text.empty x=(f(LEFT + plot_w / 2.0)) y=(f(TOP + plot_h / 2.0)) text-anchor="middle" {
                        "No attempts ended in this period"
                    }
                }
            }
        }
    }
}

fn labelled(b: &Bucket, every: i64) -> bool {
    every > 0 && (b.start.timestamp() / 60).rem_euclid(every) == 0
}

fn bar_title(b: &Bucket) -> String {
    let end = b.start + TimeDelta::minutes(b.minutes);
    let span = if b.minutes <= 1 {
        format!("{} UTC", b.start.format("%H:%M"))
    } else {
        format!(
            "{}–{} UTC",
            b.start.format("%H:%M"),
            (end - TimeDelta::minutes(1)).format("%H:%M")
        )
    };
    format!(
        "{span}: {} processed, {} failed",
        number(b.processed),
        number(b.failed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(n: usize) -> Vec<Throughput> {
        let start = "2026-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap();
        (0..n)
            .map(|i| Throughput::new(start + TimeDelta::minutes(i as i64), i as u64, 1))
            .collect()
    }

    #[test]
    fn buckets_follow_the_clock() {
        let day = buckets(&series(1440), 30);
        assert_eq!(day.len(), 48);
        assert_eq!(day[0].processed, (0..30).sum::<u64>());
        assert_eq!(day[47].failed, 30);
        assert_eq!(day[1].start.format("%H:%M").to_string(), "00:30");
        let minutes = |b: Vec<Bucket>| b.iter().map(|b| b.minutes).collect::<Vec<_>>();
        assert_eq!(minutes(buckets(&series(65), 30)), [30, 30, 5]);
        assert_eq!(minutes(buckets(&series(75)[10..], 30)), [20, 30, 15]);
    }

    #[test]
    fn steps_are_round() {
        assert_eq!(nice_step(0), 1);
        assert_eq!(nice_step(3), 1);
        assert_eq!(nice_step(7), 2);
        assert_eq!(nice_step(130), 50);
        assert_eq!(nice_step(1_000_000), 500_000);
    }

    #[test]
    fn bars_and_labels_are_drawn() {
        let markup = chart("Last hour", &buckets(&series(60), 1), 15).into_string();
        assert!(markup.contains("<svg"), "{markup}");
        assert!(markup.contains("class=\"ok\""));
        assert!(markup.contains("class=\"fail\""));
        assert!(markup.contains(">00:15<") && markup.contains(">00:30<"));
        assert!(!markup.contains(">00:05<"));
        assert!(markup.contains("1,770 processed"), "{markup}");
    }
}
