//! The `qlab` command line (clap): the REPL by default, the TUI, `run` for headless replay,
//! and one-shot verbs over the numerics core — `quantize` (PyTorch's quantize_per_tensor on
//! numbers you type), `inspect` (a model's layers), `isa` (which kernel tier runs here),
//! `bench`, and `completions` for the shell.
//!
//! Every failure is a [`CliError`], mapped to one exit code: 2 for usage and input errors, 1 for
//! a failed `expect`, 70 for a bug in qlab (a panic is caught and reported, never exit 101).

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use qlab::isa;
use qlab::session::{Batching, Command, Workbench, replay_script, replay_with_report};
use qlab::tensor::{QDType, QTensor};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// A quantization lab in the terminal: PyTorch's eager-mode int8 numerics, reproduced and
/// inspectable. With no command, the REPL starts with the bundled digits CNN and data loaded
/// (piped stdin runs commands line by line).
#[derive(Parser)]
#[command(name = "qlab")]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// quantize_per_tensor on the VALUEs, as PyTorch does it
    Quantize {
        /// quint8, qint8 or qint32
        dtype: String,
        scale: f64,
        zero_point: i64,
        /// Numbers to quantize (nan and inf allowed)
        #[arg(required = true, allow_negative_numbers = true)]
        values: Vec<f32>,
    },
    /// The full-screen TUI: replays FILE (opening at its outputs), else the digits CNN and data
    /// loaded and quantized (`?` lists the keys)
    Tui { script: Option<PathBuf> },
    /// Replay a session script headlessly; exit 2 on an error, 1 on a failed expect, naming the
    /// line
    Run {
        script: PathBuf,
        /// Also write a JUnit XML report (one test case per expect line), even when it fails
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Also write each command's result as JSON, even when it fails
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
    /// A model's nodes: path, op, attributes, shapes, params
    Inspect {
        #[arg(required_unless_present = "ops")]
        model: Option<PathBuf>,
        /// List the ONNX op types qlab imports instead
        #[arg(long, conflicts_with = "model")]
        ops: bool,
    },
    /// ISA tiers on this host and the one in use
    Isa,
    /// int8 linear and conv GOPS per tier beside the host's measured peak and our fp32
    Bench {
        #[command(subcommand)]
        model: Option<BenchCmd>,
        /// Repetitions per shape
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// Also write the report as JSON
        #[arg(long)]
        json: Option<PathBuf>,
        /// Peer figures measured on this host (tools/torch_bench.py writes them): print ratios
        /// against them
        #[arg(long, value_name = "FILE.json")]
        against: Option<PathBuf>,
    },
    /// Shell completions for qlab's command line, on stdout
    Completions { shell: clap_complete::Shell },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// batch-1 fp32 and int8 (fbgemm, qnnpack) latency, calibration time and int8 SQNR
    Model {
        /// An ONNX file or a NAME.qlab directory
        model: PathBuf,
        /// Calibration / test inputs (.npy)
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value_t = 5)]
        reps: usize,
        #[arg(long)]
        json: Option<PathBuf>,
        /// Peer figures measured on this host (the file of `qlab bench --against`, its
        /// `models_ms` section): print ratios against them
        #[arg(long, value_name = "FILE.json")]
        against: Option<PathBuf>,
    },
}

/// Why a command failed, and so its exit code.
#[derive(Debug)]
enum CliError {
    /// Bad arguments or input (a file, a model, a script line): exit 2.
    Input(String),
    /// A session script's `expect` did not hold: exit 1.
    Expectation(String),
    /// A bug in qlab (a panic caught at the top): exit 70 (sysexits' EX_SOFTWARE).
    Internal(String),
}

impl CliError {
    fn code(&self) -> u8 {
        match self {
            CliError::Input(_) => 2,
            CliError::Expectation(_) => 1,
            CliError::Internal(_) => 70,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Input(m) | CliError::Expectation(m) => write!(f, "{m}"),
            CliError::Internal(m) => {
                write!(f, "internal error (a bug in qlab, please report it): {m}")
            }
        }
    }
}

/// Any displayable lower-layer error is an input error at this level.
fn input(e: impl std::fmt::Display) -> CliError {
    CliError::Input(e.to_string())
}

/// `qlab --version`: the version and the ISA tier kernels use here.
fn version_line() -> String {
    format!(
        "{} (ISA tier: {})",
        env!("CARGO_PKG_VERSION"),
        isa::selected()
    )
}

fn main() -> ExitCode {
    keep_freed_buffers();
    let command = Cli::command().version(version_line());
    let cli = match Cli::from_arg_matches(&command.get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // Commands run on a worker of the global thread pool, so the kernels' parallel loops start
    // inside the pool: on one thread they then run inline, where from the main thread each loop
    // is a hand-off to a worker and back (measured: GoogLeNet's int8 forward at one thread
    // 11.4–17.9 ms from the main thread, 10.0–10.2 inside the pool). Workers get the main
    // thread's 8 MiB of stack. Not the TUI: it waits for keys while its speed pane's thread
    // runs kernels, which must find a free worker. A panic that escapes a command is a bug:
    // say so and exit 70.
    let in_pool = !matches!(cli.command, Some(Cmd::Tui { .. }))
        && rayon::ThreadPoolBuilder::new()
            .stack_size(8 << 20)
            .build_global()
            .is_ok();
    let command = move || {
        std::panic::catch_unwind(|| run(cli))
            .unwrap_or_else(|_| Err(CliError::Internal("see the panic message above".into())))
    };
    let result = if in_pool {
        rayon::scope(|_| command())
    } else {
        command()
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qlab: {e}");
            ExitCode::from(e.code())
        }
    }
}

/// Keeps freed buffers of up to 32 MiB (activations, accumulators, im2col matrices) in the heap
/// for the next allocation: by default glibc hands every buffer above 128 KiB back to the kernel,
/// and its next use pays a page fault per 4 KiB again (visible in the calibration line of
/// `qlab bench model`). 32 MiB is glibc's largest mmap threshold on 64-bit hosts.
fn keep_freed_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator tunables; no other thread exists yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

/// Runs one command, printing its output.
fn run(cli: Cli) -> Result<(), CliError> {
    let text = match cli.command {
        None => repl()?,
        Some(Cmd::Tui { script }) => tui(script.as_deref())?,
        Some(Cmd::Run {
            script,
            junit,
            json,
        }) => {
            let reports = ReplayReports { junit, json };
            return replay(&script, &reports);
        }
        Some(Cmd::Quantize {
            dtype,
            scale,
            zero_point,
            values,
        }) => quantize(&dtype, scale, zero_point, &values)?,
        Some(Cmd::Isa) => isa_report(),
        Some(Cmd::Inspect { ops: true, .. }) => supported_ops(),
        Some(Cmd::Inspect { model, .. }) => {
            inspect(&model.ok_or_else(|| input("inspect needs a MODEL"))?)?
        }
        Some(Cmd::Bench {
            model:
                Some(BenchCmd::Model {
                    model,
                    data,
                    reps,
                    json,
                    against,
                }),
            ..
        }) => bench_model(&model, &data, reps, json.as_deref(), against.as_deref())?,
        Some(Cmd::Bench {
            reps,
            json,
            against,
            ..
        }) => {
            // The file is checked before anything is measured: a bad one fails in no time.
            let against = load_against(against.as_deref())?;
            let mut report = qlab::bench::run(reps).map_err(input)?;
            if let Some(a) = &against {
                report.compare(a);
            }
            with_json(report.render(), &report, json.as_deref())?
        }
        Some(Cmd::Completions { shell }) => {
            let mut command = Cli::command();
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut command, "qlab", &mut out);
            String::from_utf8_lossy(&out).into_owned()
        }
    };
    print!("{text}");
    Ok(())
}

/// The report's text, after writing it as JSON to `json` when asked.
fn with_json(
    text: String,
    report: &impl serde::Serialize,
    json: Option<&Path>,
) -> Result<String, CliError> {
    let Some(path) = json else { return Ok(text) };
    let bytes = serde_json::to_vec_pretty(report).map_err(input)?;
    qlab::fsutil::write_atomic(path, &bytes)
        .map_err(|e| input(format!("cannot write {}: {e}", path.display())))?;
    Ok(format!("{text}wrote {}\n", path.display()))
}

/// The `--against` file of `qlab bench` and `bench model`, validated.
fn load_against(path: Option<&Path>) -> Result<Option<qlab::bench_against::Against>, CliError> {
    let (linear, conv) = (qlab::bench::linear_names(), qlab::bench::conv_names());
    let known = qlab::bench_against::Known {
        linear: &linear,
        conv: &conv,
    };
    path.map(|p| qlab::bench_against::Against::load(p, &known).map_err(input))
        .transpose()
}

/// `qlab bench model PATH --data NPY [--reps N] [--json FILE] [--against FILE]`.
fn bench_model(
    path: &Path,
    data: &Path,
    reps: usize,
    json: Option<&Path>,
    against: Option<&Path>,
) -> Result<String, CliError> {
    let against = load_against(against)?;
    let graph = load_model(path)?;
    let data = qlab::import::Dataset::from_npy("data", data, None).map_err(input)?;
    let name = path.file_stem().map_or_else(
        || path.display().to_string(),
        |s| s.to_string_lossy().to_string(),
    );
    let mut report = qlab::bench_model::run(&name, &graph, &data, reps).map_err(input)?;
    if let Some(a) = &against {
        report.compare(a);
    }
    with_json(report.render(), &report, json)
}

fn quantize(dtype: &str, scale: f64, zp: i64, x: &[f32]) -> Result<String, CliError> {
    let dtype = QDType::parse(dtype)
        .ok_or_else(|| input(format!("DTYPE: '{dtype}' is not quint8, qint8 or qint32")))?;
    let q = QTensor::quantize_per_tensor(x, &[x.len()], scale, zp, dtype).map_err(input)?;
    let mut out = format!(
        "{dtype} scale={scale} zero_point={zp} (reciprocal {:e})\n",
        1.0f32 / scale as f32
    );
    out.push_str(&format!(
        "{:>16} {:>12} {:>16}\n",
        "x", "int_repr", "dequantized"
    ));
    for ((xv, qv), dv) in x.iter().zip(q.int_values()).zip(q.dequantize()) {
        out.push_str(&format!("{xv:>16} {qv:>12} {dv:>16}\n"));
    }
    Ok(out)
}

fn isa_report() -> String {
    let mut out = String::new();
    for tier in isa::ALL {
        let missing = tier.missing_features();
        let status = if missing.is_empty() {
            "available".to_string()
        } else {
            format!("skipped: host lacks {}", missing.join(", "))
        };
        out.push_str(&format!("{:<11} {status}\n", tier.name()));
    }
    out.push_str(&format!("in use: {}\n", isa::selected()));
    out
}

fn supported_ops() -> String {
    let mut out = String::from(
        "ONNX op types qlab imports (default domain, opsets 11-20 tested, 7-28 read):\n",
    );
    for row in qlab::import::onnx::SUPPORTED_OPS.chunks(8) {
        out.push_str(&format!("  {}\n", row.join(" ")));
    }
    out
}

/// A model file or `NAME.qlab` directory, its error as the CLI reports it.
fn load_model(path: &Path) -> Result<qlab::graph::Graph, CliError> {
    qlab::import::load_model::<qlab::session::SessionError>(path).map_err(input)
}

fn inspect(path: &Path) -> Result<String, CliError> {
    let graph = load_model(path)?;
    let table = qlab::session::model_table(&graph).map_err(input)?;
    Ok(format!(
        "{}: {} nodes, {} parameters, {}\n{table}",
        path.display(),
        table.rows.len(),
        graph.param_count(),
        qlab::session::batch_text(&graph)
    ))
}

/// Where `qlab run` writes its reports, when asked.
struct ReplayReports {
    junit: Option<PathBuf>,
    json: Option<PathBuf>,
}

impl ReplayReports {
    fn paths(&self) -> impl Iterator<Item = (&'static str, &Path)> {
        let junit = self.junit.as_deref().map(|p| ("--junit", p));
        junit
            .into_iter()
            .chain(self.json.as_deref().map(|p| ("--json", p)))
    }

    /// Refuses, before anything runs, a report that could not be written: a long replay must not
    /// end in "cannot write". The directory must exist (a typo is not silently created).
    fn check(&self) -> Result<(), CliError> {
        if self.junit.is_some() && self.junit == self.json {
            return Err(input("--junit and --json name the same file"));
        }
        for (flag, path) in self.paths() {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            let problem = if !dir.exists() {
                format!("directory {} does not exist", dir.display())
            } else if !dir.is_dir() {
                format!("{} is not a directory", dir.display())
            } else if path.is_dir() {
                "it is a directory".to_string()
            } else {
                continue;
            };
            return Err(input(format!(
                "cannot write the {flag} report to {}: {problem}",
                path.display()
            )));
        }
        Ok(())
    }

    /// Writes the asked-for reports, each atomically (an old report stays whole on failure).
    fn write(&self, report: &qlab::report::ReplayReport) -> Result<(), CliError> {
        for (flag, path) in self.paths() {
            let text = match flag {
                "--junit" => qlab::report::junit_xml(report),
                _ => report.to_json(),
            };
            qlab::fsutil::write_atomic(path, text.as_bytes()).map_err(|e| {
                input(format!(
                    "cannot write the {flag} report to {}: {e}",
                    path.display()
                ))
            })?;
        }
        Ok(())
    }
}

/// `qlab run FILE`: prints each command's output as soon as it ran (so a long or failing replay
/// shows everything up to the failure, on a terminal or in a CI log), then the failure naming
/// the line: a failed `expect` exits 1, any other error 2, a bug 70. The reports are written
/// first, whatever the outcome, so CI shows which gate failed.
fn replay(script: &Path, reports: &ReplayReports) -> Result<(), CliError> {
    use std::io::Write;
    let shown = script.display();
    reports.check()?;
    let text = qlab::fsutil::read_text_bounded(script)
        .map_err(|e| input(format!("cannot read {shown}: {e}")))?;
    let mut wb = Workbench::new();
    wb.show_progress(true);
    wb.set_base_dir(script_dir(script));
    let mut stdout = std::io::stdout().lock();
    let name = shown.to_string();
    let (report, result) = replay_with_report(&name, &text, &mut wb, |cmd, output| {
        // A closed pipe (`qlab run … | head`) must not stop the replay.
        let _ = write!(stdout, "> {cmd}\n{output}");
        let _ = stdout.flush();
    });
    if let Err(e) = reports.write(&report) {
        // The replay's own failure still belongs in the log next to the report's.
        if let Err(failed) = &result {
            eprintln!("qlab: {shown}: {failed}");
        }
        return Err(e);
    }
    match result {
        Ok(count) => {
            let _ = writeln!(stdout, "{shown}: {count} command(s) replayed");
            Ok(())
        }
        Err(e) if e.is_internal() => Err(CliError::Internal(format!("{shown}: {e}"))),
        Err(e) if e.is_failed_expectation() => Err(CliError::Expectation(format!("{shown}: {e}"))),
        Err(e) => Err(input(format!("{shown}: {e}"))),
    }
}

/// The directory a script's relative paths are relative to: its own.
fn script_dir(script: &Path) -> PathBuf {
    script.parent().map_or_else(PathBuf::new, Path::to_path_buf)
}

/// The bundled sample models: `./sample-models`, else the source checkout qlab was built from.
fn sample_dir() -> Option<std::path::PathBuf> {
    let local = std::path::PathBuf::from("sample-models");
    let built = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-models");
    [local, built]
        .into_iter()
        .find(|d| d.join("digits_cnn.onnx").exists())
}

/// A workbench with the bundled digits CNN and its `test` and `calib` data loaded, when the
/// sample models are found.
fn preloaded() -> Result<Workbench, CliError> {
    let mut wb = Workbench::new();
    if let Some(dir) = sample_dir() {
        let path = |p: PathBuf| p.display().to_string();
        let data = |name: &str| Command::LoadData {
            name: name.into(),
            path: path(dir.join(format!("data/digits_{name}_x.npy"))),
            labels: Some(path(dir.join(format!("data/digits_{name}_y.npy")))),
        };
        let preload = [
            Command::LoadModel {
                path: path(dir.join("digits_cnn.onnx")),
            },
            data("test"),
            data("calib"),
        ];
        for cmd in preload {
            wb.apply(&cmd)
                .map_err(|e| input(format!("preloading the sample model: {e}")))?;
        }
    }
    Ok(wb)
}

fn repl() -> Result<String, CliError> {
    match qlab::repl::run(preloaded()?) {
        Ok(0) => Ok(String::new()),
        Ok(failed) => Err(input(format!("{failed} command(s) failed"))),
        Err(e) => Err(input(format!("terminal error: {e}"))),
    }
}

/// `qlab tui [FILE.qls]`: the script replayed (its outputs in the log), else the sample model
/// preloaded and quantized on `calib` so every pane has data.
fn tui(script: Option<&Path>) -> Result<String, CliError> {
    // Refused before any replay: the work would be thrown away.
    if !qlab::tui::has_terminal() {
        return Err(input(
            "qlab tui needs a terminal (stdin and stdout); `qlab run FILE.qls` replays a session without one",
        ));
    }
    let mut log = String::new();
    let app = match script {
        Some(script) => {
            let shown = script.display();
            let text = qlab::fsutil::read_text_bounded(script)
                .map_err(|e| input(format!("cannot read {shown}: {e}")))?;
            let mut wb = Workbench::new();
            wb.set_base_dir(script_dir(script));
            let replayed = replay_script(&text, &mut wb, |cmd, output| {
                log.push_str(&format!("> {cmd}\n{output}"));
            });
            match replayed {
                // A bug may leave the workbench inconsistent: do not go on with it.
                Err(e) if e.is_internal() => {
                    return Err(CliError::Internal(format!("{shown}: {e}")));
                }
                // Open at the failing line, the error in the log, to fix it interactively.
                Err(e) => log.push_str(&format!("error: {shown}: {e}\n")),
                Ok(_) => {}
            }
            let mut app = qlab::tui::App::new(wb);
            app.log_text(&log);
            app
        }
        None => {
            let mut app = qlab::tui::App::new(preloaded()?);
            if app.wb.dataset_names().iter().any(|d| d == "calib") {
                app.apply(&Command::Quantize {
                    data: "calib".into(),
                    batching: Batching::default(),
                });
            }
            app
        }
    };
    qlab::tui::run(app).map_err(|e| input(format!("terminal error: {e}")))?;
    Ok(String::new())
}
