//! The report: every figure beside its target and verdict, printed as a
//! table at the end of the run, with notes.

use std::time::Duration;

use crate::stats::Samples;
use crate::{MIB, WARMUP};

pub(crate) enum Verdict {
    Pass,
    Miss,
    Info,
}

pub(crate) struct Row {
    pub(crate) scenario: String,
    pub(crate) figure: String,
    pub(crate) value: String,
    pub(crate) target: String,
    pub(crate) verdict: Verdict,
}

#[derive(Default)]
pub(crate) struct Report {
    pub(crate) rows: Vec<Row>,
    pub(crate) notes: Vec<String>,
}

impl Report {
    /// A figure with a target: `pass` says whether it is met.
    pub(crate) fn check(
        &mut self,
        scenario: &str,
        figure: &str,
        value: String,
        target: &str,
        pass: bool,
    ) {
        self.push(
            scenario,
            figure,
            value,
            target,
            if pass { Verdict::Pass } else { Verdict::Miss },
        );
    }

    pub(crate) fn info(&mut self, scenario: &str, figure: &str, value: String) {
        self.push(scenario, figure, value, "", Verdict::Info);
    }

    pub(crate) fn push(
        &mut self,
        scenario: &str,
        figure: &str,
        value: String,
        target: &str,
        v: Verdict,
    ) {
        println!("  {scenario} {figure}: {value}");
        self.rows.push(Row {
            scenario: scenario.into(),
            figure: figure.into(),
            value,
            target: target.into(),
            verdict: v,
        });
    }

    pub(crate) fn note(&mut self, note: String) {
        println!("  note: {note}");
        self.notes.push(note);
    }

    pub(crate) fn errors(&mut self, scenario: &str, what: &str, samples: &Samples) {
        if samples.errors > 0 {
            self.check(
                scenario,
                &format!("{what} errors"),
                samples.errors.to_string(),
                "0",
                false,
            );
            self.note(format!(
                "({scenario}) first {what} error: {}",
                samples.first_error.as_deref().unwrap_or("?")
            ));
        }
    }

    /// A failure whose details go to the notes, to keep the table narrow.
    pub(crate) fn failed(&mut self, scenario: &str, figure: &str, details: String) {
        self.check(scenario, figure, "failed (see notes)".into(), "", false);
        self.note(format!("({scenario}) {figure}: {details}"));
    }

    pub(crate) fn print(&self, secs: u64, elapsed: Duration) {
        let header = ["scenario", "figure", "measured", "target", ""];
        let cells: Vec<[String; 5]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.scenario.clone(),
                    r.figure.clone(),
                    r.value.clone(),
                    r.target.clone(),
                    match r.verdict {
                        Verdict::Pass => "ok",
                        Verdict::Miss => "MISSED",
                        Verdict::Info => "",
                    }
                    .into(),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &cells {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |row: &[String]| {
            let padded: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            format!("| {} |", padded.join(" | "))
        };
        println!();
        println!(
            "osmium-chat load: 2 replicas, {secs} s per point after {} s warm-up, {} cores, run took {:.0} s",
            WARMUP.as_secs(),
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            elapsed.as_secs_f64()
        );
        println!("{}", line(&header.map(String::from)));
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        println!("{}", line(&rule).replace(' ', "-"));
        for row in &cells {
            println!("{}", line(row));
        }
        let missed = self
            .rows
            .iter()
            .filter(|r| matches!(r.verdict, Verdict::Miss))
            .count();
        let met = self
            .rows
            .iter()
            .filter(|r| matches!(r.verdict, Verdict::Pass))
            .count();
        println!("targets met: {met}, missed: {missed}");
        for note in &self.notes {
            println!("note: {note}");
        }
    }
}

pub(crate) fn ms(value: f64) -> String {
    format!("{value:.2} ms")
}

pub(crate) fn mib(bytes: f64) -> String {
    if bytes.abs() >= MIB {
        format!("{:.1} MiB", bytes / MIB)
    } else {
        format!("{:.1} KiB", bytes / 1024.0)
    }
}
