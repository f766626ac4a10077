//! The `qlab` command line.
//!
//! Until the workbench lands this offers one-shot verbs over the numerics core: `quantize`
//! (PyTorch's quantize_per_tensor on numbers you type), `inspect` (a model's layers) and `isa`
//! (which kernel tier runs here).
//! Errors go to stderr with exit code 2; nothing here panics on user input.

use qlab::graph::summarize;
use qlab::import::onnx::load_onnx;
use qlab::isa;
use qlab::session::{Workbench, replay_script};
use qlab::tensor::{QDType, QTensor};
use std::process::ExitCode;

const USAGE: &str = "\
qlab — a quantization lab in the terminal

usage:
  qlab                                            the REPL, with the digits CNN and data loaded
                                                  (piped stdin runs commands line by line)
  qlab quantize DTYPE SCALE ZERO_POINT VALUE...   quantize_per_tensor, as PyTorch does it
  qlab tui [FILE.qls]                             the full-screen TUI: replays FILE, else the digits CNN
                                                  and data loaded and quantized (`?` lists the keys)
  qlab run FILE.qls                               replay a session script headlessly (non-zero exit on
                                                  any error or failed expect, naming the line)
  qlab inspect MODEL.onnx                         the model's nodes: path, op, attributes, shapes, params
  qlab inspect --ops                              the ONNX op types qlab imports
  qlab isa                                        ISA tiers on this host and the one in use
  qlab bench [--reps N] [--json FILE]             int8 linear GOPS per tier and fp32 GFLOPS on the
                                                  ANCHORS shapes, beside PyTorch's figures
  qlab bench model MODEL --data X.npy [--reps N] [--json FILE]
                                                  batch-1 fp32 and int8 (fbgemm, qnnpack) latency,
                                                  calibration time and int8 SQNR, beside PyTorch's
  qlab help                                       this text
";

/// The exit code of a run stopped by a bug in qlab (sysexits' EX_SOFTWARE).
const EXIT_INTERNAL: u8 = 70;

fn main() -> ExitCode {
    keep_freed_buffers();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [cmd, script] = &args[..]
        && cmd == "run"
    {
        return replay(script);
    }
    // A panic that escapes a subcommand is a bug: say so and exit 70, never 101.
    match std::panic::catch_unwind(|| run(&args)) {
        Ok(Ok(text)) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("qlab: {e}");
            ExitCode::from(2)
        }
        Err(_) => {
            eprintln!(
                "qlab: internal error (a bug in qlab, please report it); see the panic above"
            );
            ExitCode::from(EXIT_INTERNAL)
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

fn run(args: &[String]) -> Result<String, String> {
    match args.first().map(String::as_str) {
        None => repl(),
        Some("tui") => match &args[1..] {
            [] => tui(None),
            [script] => tui(Some(script)),
            _ => Err(format!("tui takes at most one FILE.qls\n{USAGE}")),
        },
        Some("help" | "-h" | "--help") => Ok(USAGE.to_string()),
        Some("quantize") => quantize(&args[1..]),
        Some("isa") => Ok(isa_report()),
        Some("bench") => bench(&args[1..]),
        Some("run") => Err(format!("run needs one FILE.qls\n{USAGE}")),
        Some("inspect") => match &args[1..] {
            [flag] if flag == "--ops" => Ok(supported_ops()),
            [model] => inspect(model),
            _ => Err(format!("inspect needs one MODEL path\n{USAGE}")),
        },
        Some(other) => Err(format!("unknown command '{other}'\n{USAGE}")),
    }
}

/// The `--flag value` pairs of subcommand `cmd`, each flag one of `known`.
fn flags<'a>(
    cmd: &str,
    args: &'a [String],
    known: &[&str],
) -> Result<Vec<(&'a str, &'a str)>, String> {
    args.chunks(2)
        .map(|pair| {
            let flag = pair[0].as_str();
            match pair.get(1) {
                None => Err(format!("{cmd}: {flag} needs a value\n{USAGE}")),
                Some(_) if !known.contains(&flag) => {
                    Err(format!("{cmd}: unknown option '{flag}'\n{USAGE}"))
                }
                Some(value) => Ok((flag, value.as_str())),
            }
        })
        .collect()
}

/// The report's text, after writing it as JSON to `json` when asked.
fn with_json(
    text: String,
    report: &impl serde::Serialize,
    json: Option<&str>,
) -> Result<String, String> {
    let Some(path) = json else { return Ok(text) };
    let bytes = serde_json::to_vec_pretty(report).map_err(|e| e.to_string())?;
    qlab::fsutil::write_atomic(std::path::Path::new(path), &bytes)
        .map_err(|e| format!("bench: cannot write {path}: {e}"))?;
    Ok(format!("{text}wrote {path}\n"))
}

/// `qlab bench model PATH --data NPY [--reps N] [--json FILE]`.
fn bench_model(args: &[String]) -> Result<String, String> {
    let [path, rest @ ..] = args else {
        return Err(format!("bench model needs a model PATH\n{USAGE}"));
    };
    let (mut reps, mut json, mut data) = (5usize, None, None);
    for (flag, value) in flags("bench model", rest, &["--reps", "--json", "--data"])? {
        match flag {
            "--reps" => reps = parse("--reps", value)?,
            "--json" => json = Some(value),
            _ => data = Some(value),
        }
    }
    let p = std::path::Path::new(path);
    let graph = if p.is_dir() {
        qlab::import::native::load_native(p).map_err(|e| e.to_string())?
    } else {
        qlab::import::onnx::load_onnx(p).map_err(|e| e.to_string())?
    };
    let data =
        data.ok_or("bench model: --data FILE.npy (calibration / test inputs) is required")?;
    let data = qlab::import::Dataset::from_npy("data", std::path::Path::new(data), None)
        .map_err(|e| e.to_string())?;
    let name = p
        .file_stem()
        .map_or_else(|| path.clone(), |s| s.to_string_lossy().to_string());
    let report = qlab::bench_model::run(&name, &graph, &data, reps).map_err(|e| e.to_string())?;
    with_json(report.render(), &report, json)
}

fn bench(args: &[String]) -> Result<String, String> {
    if args.first().map(String::as_str) == Some("model") {
        return bench_model(&args[1..]);
    }
    let (mut reps, mut json) = (3usize, None);
    for (flag, value) in flags("bench", args, &["--reps", "--json"])? {
        match flag {
            "--reps" => reps = parse("--reps", value)?,
            _ => json = Some(value),
        }
    }
    let report = qlab::bench::run(reps).map_err(|e| e.to_string())?;
    with_json(report.render(), &report, json)
}

fn parse<T: std::str::FromStr>(what: &str, text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{what}: cannot parse '{text}'"))
}

fn quantize(args: &[String]) -> Result<String, String> {
    let [dtype, scale, zp, values @ ..] = args else {
        return Err(format!(
            "quantize needs DTYPE SCALE ZERO_POINT VALUE...\n{USAGE}"
        ));
    };
    if values.is_empty() {
        return Err("quantize needs at least one VALUE".into());
    }
    let dtype = QDType::parse(dtype)
        .ok_or_else(|| format!("DTYPE: '{dtype}' is not quint8, qint8 or qint32"))?;
    let scale: f64 = parse("SCALE", scale)?;
    let zp: i64 = parse("ZERO_POINT", zp)?;
    let x = values
        .iter()
        .map(|v| parse::<f32>("VALUE", v))
        .collect::<Result<Vec<_>, _>>()?;
    let q = QTensor::quantize_per_tensor(&x, &[x.len()], scale, zp, dtype)
        .map_err(|e| e.to_string())?;
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

fn shapes(list: &[Vec<usize>]) -> String {
    list.iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(" ")
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

fn inspect(model: &str) -> Result<String, String> {
    let graph = load_onnx(std::path::Path::new(model)).map_err(|e| e.to_string())?;
    let rows = summarize(&graph).map_err(|e| e.to_string())?;
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    let batch = match graph.inputs.first().and_then(|i| i.shape.first()) {
        Some(Some(b)) => format!("batch pinned at {b}"),
        _ => "any batch".to_string(),
    };
    let mut out = format!(
        "{model}: {} nodes, {} parameters, {batch}\n",
        rows.len(),
        graph.param_count()
    );
    out.push_str(&format!(
        "{:<width$}  {:<14} {:<34} {:<22} {:<22} {:>8}\n",
        "path", "op", "attributes", "input", "output", "params"
    ));
    for r in &rows {
        out.push_str(&format!(
            "{:<width$}  {:<14} {:<34} {:<22} {:<22} {:>8}\n",
            r.name,
            r.op,
            r.attributes,
            shapes(&r.input_shapes),
            shapes(&r.output_shapes),
            r.params
        ));
    }
    Ok(out)
}

/// `qlab run FILE`: prints each command's output as soon as it ran (so a long or failing replay
/// shows everything up to the failure, on a terminal or in a CI log), then the failure on stderr
/// naming the line. Exit 0 on success, 2 on a script error or failed expect, 70 on a bug.
fn replay(script: &str) -> ExitCode {
    use std::io::Write;
    let text = match qlab::fsutil::read_text_bounded(std::path::Path::new(script)) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("qlab: cannot read {script}: {e}");
            return ExitCode::from(2);
        }
    };
    let mut wb = Workbench::new();
    let mut stdout = std::io::stdout().lock();
    let result = replay_script(&text, &mut wb, |cmd, output| {
        // A closed pipe (`qlab run … | head`) must not stop the replay.
        let _ = write!(stdout, "> {cmd}\n{output}");
        let _ = stdout.flush();
    });
    match result {
        Ok(count) => {
            let _ = writeln!(stdout, "{script}: {count} command(s) replayed");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("qlab: {script}: {e}");
            ExitCode::from(if e.is_internal() { EXIT_INTERNAL } else { 2 })
        }
    }
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
fn preloaded() -> Result<Workbench, String> {
    let mut wb = Workbench::new();
    if let Some(dir) = sample_dir() {
        let data = dir.join("data");
        let preload = [
            format!("load model \"{}\"", dir.join("digits_cnn.onnx").display()),
            format!(
                "load data test \"{}\" labels=\"{}\"",
                data.join("digits_test_x.npy").display(),
                data.join("digits_test_y.npy").display()
            ),
            format!(
                "load data calib \"{}\" labels=\"{}\"",
                data.join("digits_calib_x.npy").display(),
                data.join("digits_calib_y.npy").display()
            ),
        ];
        for line in preload {
            if let Ok(Some(cmd)) = qlab::session::parse_line(&line) {
                wb.apply(&cmd)
                    .map_err(|e| format!("preloading the sample model: {e}"))?;
            }
        }
    }
    Ok(wb)
}

fn repl() -> Result<String, String> {
    match qlab::repl::run(preloaded()?) {
        Ok(0) => Ok(String::new()),
        Ok(failed) => Err(format!("{failed} command(s) failed")),
        Err(e) => Err(format!("terminal error: {e}")),
    }
}

/// `qlab tui [FILE.qls]`: the script replayed (its outputs in the log), else the sample model
/// preloaded and quantized on `calib` so every pane has data.
fn tui(script: Option<&String>) -> Result<String, String> {
    // Refused before any replay: the work would be thrown away.
    if !qlab::tui::has_terminal() {
        return Err(
            "qlab tui needs a terminal (stdin and stdout); `qlab run FILE.qls` replays a session without one"
                .into(),
        );
    }
    let mut log = String::new();
    let app = match script {
        Some(script) => {
            let text = qlab::fsutil::read_text_bounded(std::path::Path::new(script))
                .map_err(|e| format!("cannot read {script}: {e}"))?;
            let mut wb = Workbench::new();
            replay_script(&text, &mut wb, |cmd, output| {
                log.push_str(&format!("> {cmd}\n{output}"));
            })
            .map_err(|e| format!("{log}{script}: {e}"))?;
            let mut app = qlab::tui::App::new(wb);
            app.log_text(&log);
            app
        }
        None => {
            let mut app = qlab::tui::App::new(preloaded()?);
            if app.wb.dataset_names().iter().any(|d| d == "calib")
                && let Ok(Some(cmd)) = qlab::session::parse_line("quantize calib")
            {
                app.apply(&cmd);
            }
            app
        }
    };
    qlab::tui::run(app).map_err(|e| format!("terminal error: {e}"))?;
    Ok(String::new())
}
