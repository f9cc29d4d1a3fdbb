//! Draws bench/scale.sh's results as one SVG of small charts: per metric,
//! its value against the number of keys, one line per engine, both axes on
//! a log scale.
//!
//! `scale-chart --results=FILE --svg=OUT [--metrics=a,b,...] [--title=T]`
//!
//! FILE is tab-separated `keys engine metric value` lines (`#` lines are
//! comments), as bench/scale.sh writes them.

use std::collections::BTreeMap;
use std::process::ExitCode;

use plotters::coord::Shift;
use plotters::prelude::*;

const COLORS: [RGBColor; 5] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
];

/// The metrics drawn by default, with their axis captions.
const METRICS: &[(&str, &str)] = &[
    ("fillrandom", "fillrandom ops/s"),
    ("readrandom", "readrandom ops/s"),
    ("seekrandom", "seekrandom ops/s"),
    ("overwrite", "overwrite ops/s"),
    ("write_amp_fill", "write amp, fillrandom"),
    ("write_amp_overwrite", "write amp, overwrite"),
    ("space_amp", "space amp after compact"),
    ("peak_anon_mib", "peak anonymous RSS, readrandom (MiB)"),
];

/// Per metric, per engine: (keys, value) points in key order.
type Series = BTreeMap<String, BTreeMap<String, Vec<(f64, f64)>>>;

fn parse(text: &str) -> Result<(Series, Vec<String>), String> {
    let mut series = Series::new();
    let mut engines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        let [keys, engine, metric, value] = f[..] else {
            return Err(format!(
                "line {}: expected 4 tab-separated fields, found {}",
                i + 1,
                f.len()
            ));
        };
        let number = |s: &str| {
            s.trim()
                .parse::<f64>()
                .map_err(|_| format!("line {}: {s:?} is not a number", i + 1))
        };
        let (keys, value) = (number(keys)?, number(value)?);
        if !engines.iter().any(|e| e == engine) {
            engines.push(engine.to_string());
        }
        series
            .entry(metric.to_string())
            .or_default()
            .entry(engine.to_string())
            .or_default()
            .push((keys, value));
    }
    for by_engine in series.values_mut() {
        for points in by_engine.values_mut() {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
    }
    Ok((series, engines))
}

fn panel(
    area: &DrawingArea<SVGBackend, Shift>,
    caption: &str,
    by_engine: &BTreeMap<String, Vec<(f64, f64)>>,
    engines: &[String],
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    let points = by_engine.values().flatten();
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 || y0 <= 0.0 {
        return Ok(());
    }
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 15))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(56)
        .build_cartesian_2d(
            (x0 / 1.5..x1 * 1.5).log_scale(),
            (y0 / 1.5..y1 * 1.5).log_scale(),
        )
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("keys")
        .x_label_formatter(&|x| format!("{:.0e}", x))
        .y_label_formatter(&|y| {
            if *y >= 1000.0 {
                format!("{:.0}k", y / 1000.0)
            } else {
                format!("{y:.2}")
            }
        })
        .draw()
        .map_err(e)?;
    for (i, engine) in engines.iter().enumerate() {
        let Some(points) = by_engine.get(engine) else {
            continue;
        };
        let c = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))
            .map_err(e)?
            .label(engine.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, c.filled())))
            .map_err(e)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(e)?;
    Ok(())
}

fn run() -> Result<(), String> {
    let (mut results, mut svg, mut title) = (String::new(), String::new(), String::new());
    let mut metrics: Vec<String> = METRICS.iter().map(|(m, _)| m.to_string()).collect();
    for a in std::env::args().skip(1) {
        let (name, value) = a
            .strip_prefix("--")
            .and_then(|b| b.split_once('='))
            .ok_or_else(|| format!("unexpected argument {a:?}; use --name=value"))?;
        match name {
            "results" => results = value.into(),
            "svg" => svg = value.into(),
            "title" => title = value.into(),
            "metrics" => metrics = value.split(',').map(str::to_string).collect(),
            _ => return Err(format!("unknown flag --{name}")),
        }
    }
    if results.is_empty() || svg.is_empty() {
        return Err("--results=FILE and --svg=OUT are required".into());
    }
    let text = std::fs::read_to_string(&results).map_err(|e| format!("reading {results}: {e}"))?;
    let (series, engines) = parse(&text)?;
    let cols = 2usize;
    let rows = metrics.len().div_ceil(cols).max(1);
    let root = SVGBackend::new(&svg, (1000, 40 + 300 * rows as u32)).into_drawing_area();
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let root = root.titled(&title, ("sans-serif", 18)).map_err(e)?;
    let areas = root.split_evenly((rows, cols));
    for (area, metric) in areas.iter().zip(&metrics) {
        let caption = METRICS
            .iter()
            .find(|(m, _)| m == metric)
            .map_or(metric.as_str(), |(_, c)| c);
        if let Some(by_engine) = series.get(metric) {
            panel(area, caption, by_engine, &engines)?;
        }
    }
    root.present().map_err(e)?;
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scale-chart: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_sorts_by_keys() {
        let (s, engines) = parse(
            "# c\n10\tjkv\tfillrandom\t5\n1\tjkv\tfillrandom\t7\n1\trocksdb\tfillrandom\t3\n",
        )
        .unwrap();
        assert_eq!(engines, ["jkv", "rocksdb"]);
        assert_eq!(s["fillrandom"]["jkv"], [(1.0, 7.0), (10.0, 5.0)]);
        assert!(parse("1\tjkv\tx\n").unwrap_err().contains("line 1"));
        assert!(parse("1\tjkv\tx\tnope\n")
            .unwrap_err()
            .contains("not a number"));
    }
}
