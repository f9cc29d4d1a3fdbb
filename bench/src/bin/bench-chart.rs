//! `bench-chart`: reads the runs `bench/compare.sh` collected, prints the
//! Markdown table of medians and ratios, and draws them as an SVG bar chart
//! (throughput relative to the fastest engine of each workload, so fills,
//! syncs and scans share one axis).
//!
//! `bench-chart --results=FILE --svg=OUT [--runs=1] --engines=jkv,rocksdb,fjall --labels="jkv,RocksDB,fjall"`
#![forbid(unsafe_code)]

use std::process::ExitCode;

use plotters::prelude::*;

use jkv_bench::summary::{markdown_table, parse_samples, rows, runs_table, thousands, Row};

const COLORS: [RGBColor; 4] = [
    RGBColor(0xd6, 0x4f, 0x1e),
    RGBColor(0x3b, 0x6e, 0xa8),
    RGBColor(0x5a, 0x9e, 0x4b),
    RGBColor(0x8e, 0x6c, 0xb0),
];

struct Args {
    results: String,
    svg: String,
    engines: Vec<String>,
    labels: Vec<String>,
    title: String,
    runs: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        results: String::new(),
        svg: String::new(),
        engines: vec!["jkv".into(), "rocksdb".into(), "fjall".into()],
        labels: Vec::new(),
        title: "Throughput relative to the fastest engine per workload (median of rounds)".into(),
        runs: false,
    };
    for a in std::env::args().skip(1) {
        let (name, value) = a
            .strip_prefix("--")
            .and_then(|b| b.split_once('='))
            .ok_or_else(|| format!("unexpected argument {a:?}; use --name=value"))?;
        let list = |v: &str| v.split(',').map(str::to_string).collect::<Vec<_>>();
        match name {
            "results" => args.results = value.into(),
            "svg" => args.svg = value.into(),
            "engines" => args.engines = list(value),
            "labels" => args.labels = list(value),
            "title" => args.title = value.into(),
            "runs" => args.runs = value == "1",
            _ => return Err(format!("unknown flag --{name}")),
        }
    }
    if args.results.is_empty() || args.svg.is_empty() {
        return Err("--results=FILE and --svg=OUT are required".into());
    }
    if args.labels.len() != args.engines.len() {
        args.labels = args.engines.clone();
    }
    Ok(args)
}

fn draw(path: &str, title: &str, rows: &[Row], labels: &[String]) -> Result<(), String> {
    let engines = labels.len();
    let bar_px = 16i32;
    let group_px = bar_px * engines as i32 + 14;
    let top = 80i32;
    let left = 240i32;
    let bar_max = 560.0;
    let width = 1000u32;
    let height = (top + group_px * rows.len() as i32 + 30) as u32;
    let root = SVGBackend::new(path, (width, height)).into_drawing_area();
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let font = |size: i32| ("sans-serif", size).into_font().color(&BLACK);
    root.draw(&Text::new(title.to_string(), (12, 12), font(17)))
        .map_err(e)?;
    let mut x = 12;
    for (i, label) in labels.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        root.draw(&Rectangle::new([(x, 44), (x + 14, 58)], c.filled()))
            .map_err(e)?;
        root.draw(&Text::new(label.clone(), (x + 20, 44), font(14)))
            .map_err(e)?;
        x += 30 + 8 * label.len() as i32;
    }
    for (r, row) in rows.iter().enumerate() {
        let y0 = top + r as i32 * group_px;
        root.draw(&Text::new(
            row.workload.clone(),
            (12, y0 + group_px / 2 - 12),
            font(14),
        ))
        .map_err(e)?;
        let best = row.medians.iter().flatten().copied().fold(0.0, f64::max);
        for (i, m) in row.medians.iter().enumerate() {
            let y = y0 + i as i32 * bar_px;
            let Some(v) = m else { continue };
            let len = if best > 0.0 { v / best * bar_max } else { 0.0 };
            let c = COLORS[i % COLORS.len()];
            root.draw(&Rectangle::new(
                [(left, y), (left + len.max(1.0) as i32, y + bar_px - 2)],
                c.filled(),
            ))
            .map_err(e)?;
            root.draw(&Text::new(
                format!("{} ops/s", thousands(*v)),
                (left + len as i32 + 6, y + 1),
                font(12),
            ))
            .map_err(e)?;
        }
    }
    root.present().map_err(e)?;
    Ok(())
}

fn main() -> ExitCode {
    let run = || -> Result<(), String> {
        let args = parse_args()?;
        let text = std::fs::read_to_string(&args.results)
            .map_err(|e| format!("reading {}: {e}", args.results))?;
        let samples = parse_samples(&text)?;
        let engines: Vec<&str> = args.engines.iter().map(String::as_str).collect();
        let labels: Vec<&str> = args.labels.iter().map(String::as_str).collect();
        let rows = rows(&samples, &engines);
        print!("{}", markdown_table(&rows, &labels));
        if args.runs {
            println!("\nEvery run (ops/s), rounds in the order they ran:\n");
            print!("{}", runs_table(&samples, &engines, &labels));
        }
        draw(&args.svg, &args.title, &rows, &args.labels)
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-chart: {e}");
            ExitCode::FAILURE
        }
    }
}
