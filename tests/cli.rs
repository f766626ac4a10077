//! The real binary: a piped REPL session that quantizes, survives a refused command, exports a
//! report and saves itself; the
//! saved session replayed by `qlab run` to byte-identical reports; a failing `expect` (non-zero
//! exit naming the line); a corrupted session file (clear error, nothing written).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh scratch directory under `target/` for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = root().join("target/cli-tests").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn qlab(args: &[&str], stdin: Option<&str>) -> Output {
    qlab_with(args, stdin, &[])
}

/// [`qlab`] with extra environment variables.
fn qlab_with(args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_qlab"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = stdin.unwrap_or("").to_string();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn piped_session_saves_and_replays_to_identical_reports() {
    let dir = scratch("round_trip");
    let (report, session) = (dir.join("errors.json"), dir.join("saved.qls"));
    let input = format!(
        "load data calib sample-models/data/digits_calib_x.npy\n\
         load data test sample-models/data/digits_test_x.npy labels=sample-models/data/digits_test_y.npy\n\
         load model sample-models/digits_cnn.onnx\n\
         quantize calib batches=3\n\
         qconfig conv2 activation=minmax(reduce_range=true) weight=per_channel_minmax\n\
         qconfig conv2 activation=minmax(reduce_range=true) weight=\"per_channel_minmax(dtype=qint8, qscheme=per_channel_symmetric)\"\n\
         export errors test out={}\n\
         save session {}\n",
        report.display(),
        session.display()
    );
    let out = qlab(&[], Some(&input));
    // Line 5 asks for quint8 weights, which fbgemm cannot run: refused, state kept, the
    // session goes on and the failure sets the exit status.
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("qint8 weights") && err.contains("input line 5"),
        "{err}"
    );
    let first = std::fs::read(&report).unwrap();
    let saved = std::fs::read_to_string(&session).unwrap();
    assert!(saved.contains("quantize calib batches=3"), "{saved}");
    assert!(
        !saved.contains("weight=per_channel_minmax\n"),
        "failed lines are not recorded"
    );
    // Replays on one, two and three rayon threads all write the same bytes.
    for threads in ["1", "2", "3"] {
        std::fs::remove_file(&report).unwrap();
        let run = ["run", session.to_str().unwrap()];
        let out = qlab_with(&run, None, &[("RAYON_NUM_THREADS", threads)]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(
            std::fs::read(&report).unwrap(),
            first,
            "replayed report differs on {threads} thread(s)"
        );
    }
}

#[test]
fn a_failing_expect_exits_non_zero_naming_the_line() {
    let dir = scratch("failing_expect");
    let script = dir.join("s.qls");
    // A script's paths are relative to its own directory.
    std::fs::write(
        &script,
        "load data test ../../../sample-models/data/digits_test_x.npy labels=../../../sample-models/data/digits_test_y.npy\n\
         load model ../../../sample-models/digits_mlp.onnx\n\
         # the MLP gets 387 right\n\
         expect correct(test) == 390\n",
    )
    .unwrap();
    let out = qlab(&["run", script.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1), "a failed expect exits 1");
    let err = text(&out.stderr);
    assert!(
        err.contains("line 4") && err.contains("expectation failed") && err.contains("387"),
        "{err}"
    );
    // Everything before the failing line was printed on stdout, as it ran.
    let printed = text(&out.stdout);
    assert!(
        printed.contains("> load model ../../../sample-models/digits_mlp.onnx")
            && printed.contains("loaded data test: 397 samples"),
        "{printed}"
    );
    assert!(!printed.contains("expectation failed"), "{printed}");
}

#[test]
fn a_corrupted_session_is_refused_and_writes_nothing() {
    let dir = scratch("corrupted");
    let script = dir.join("bad.qls");
    let target = dir.join("never.qls");
    let mut bytes = b"load model ../../../sample-models/digits_mlp.onnx\n".to_vec();
    bytes.extend_from_slice(&[0xff, 0xfe, 0x00, 0x80]);
    bytes.extend_from_slice(format!("\nsave session {}\n", target.display()).as_bytes());
    std::fs::write(&script, bytes).unwrap();
    let out = qlab(&["run", script.to_str().unwrap()], None);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("bad.qls") && err.contains("UTF-8"), "{err}");
    assert!(!target.exists(), "nothing may be written");

    // A line that parses badly stops the replay there: the later save never runs.
    std::fs::write(
        &script,
        format!(
            "load model ../../../sample-models/digits_mlp.onnx\nqconfig fc preset=nonsense\nsave session {}\n",
            target.display()
        ),
    )
    .unwrap();
    let out = qlab(&["run", script.to_str().unwrap()], None);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("line 2") && err.contains("nonsense"), "{err}");
    assert!(!target.exists(), "nothing may be written");
}

/// `qlab tui` without a terminal is a clear error (not a panic, exit 70) before any replay.
#[test]
fn tui_without_a_terminal_is_an_error() {
    for args in [&["tui"][..], &["tui", "sessions/digits_float.qls"]] {
        let out = qlab(args, None);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("qlab tui needs a terminal"), "{err}");
        assert!(out.stdout.is_empty());
    }
}

/// The command line follows clap's conventions: `--version` (with the ISA tier), `--help` on
/// every subcommand, usage errors exit 2, shell completions are generated.
#[test]
fn command_line_conventions() {
    let out = qlab(&["--version"], None);
    assert!(out.status.success());
    let v = text(&out.stdout);
    assert!(
        v.starts_with(&format!("qlab {}", env!("CARGO_PKG_VERSION"))) && v.contains("ISA tier"),
        "{v}"
    );
    for sub in [
        "run",
        "bench",
        "inspect",
        "tui",
        "quantize",
        "isa",
        "completions",
    ] {
        let out = qlab(&[sub, "--help"], None);
        assert!(out.status.success(), "{sub} --help: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("Usage: qlab"), "{sub}");
    }
    let out = qlab(&["bench", "model", "--help"], None);
    assert!(text(&out.stdout).contains("--data"));
    for bad in [
        &["bogus"][..],
        &["inspect"],
        &["run"],
        &["quantize", "quint8", "x", "0", "1"],
    ] {
        let out = qlab(bad, None);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", text(&out.stderr));
    }
    let out = qlab(&["completions", "bash"], None);
    assert!(out.status.success() && text(&out.stdout).contains("qlab"));
    let out = qlab(&["quantize", "quint8", "0.05", "128", "-0.5", "nan"], None);
    assert!(text(&out.stdout).contains("118"), "{}", text(&out.stdout));
}

/// A script's relative paths are relative to the script's own directory, and `save session`
/// rewrites every path relative to the file it writes: a session saved in one directory
/// replays from another, run from a third working directory.
#[test]
fn a_session_saved_in_one_directory_replays_from_another() {
    let dir = scratch("relative_paths");
    let (one, two) = (dir.join("one"), dir.join("two/deeper"));
    std::fs::create_dir_all(&one).unwrap();
    let first = one.join("first.qls");
    std::fs::write(
        &first,
        "load model ../../../../sample-models/digits_mlp.onnx\n\
         load data test ../../../../sample-models/data/digits_test_x.npy labels=../../../../sample-models/data/digits_test_y.npy\n\
         eval test\n\
         predict test out=outputs.npy\n\
         save session ../two/deeper/saved.qls\n",
    )
    .unwrap();
    let out = qlab(&["run", first.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        one.join("outputs.npy").exists(),
        "out= is relative to the script"
    );
    let saved = std::fs::read_to_string(two.join("saved.qls")).unwrap();
    assert!(
        saved.contains("load model ../../../../../sample-models/digits_mlp.onnx\n")
            && saved.contains("labels=../../../../../sample-models/data/digits_test_y.npy\n")
            && saved.contains("predict test out=../../one/outputs.npy\n"),
        "{saved}"
    );
    std::fs::remove_file(one.join("outputs.npy")).unwrap();
    let again = Command::new(env!("CARGO_BIN_EXE_qlab"))
        .args(["run", "two/deeper/saved.qls"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", text(&again.stderr));
    let eval = |o: &Output| {
        text(&o.stdout)
            .lines()
            .find(|l| l.contains("accuracy"))
            .map(str::to_string)
    };
    assert!(eval(&out).is_some());
    assert_eq!(eval(&again), eval(&out));
    assert!(
        one.join("outputs.npy").exists(),
        "the replay wrote beside the first script"
    );
}
