//! The real binary: a piped REPL session that quantizes, survives a refused command, exports a
//! report and saves itself; the
//! saved session replayed by `qlab run` to byte-identical reports; a failing `expect` (non-zero
//! exit naming the line); a corrupted session file (clear error, nothing written); `qlab run
//! --junit/--json` reports (JUnit structure checked, written on failure, bad paths refused).

use crate::support::{root, scratch};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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
    // Every subcommand `qlab --help` lists, so a new one is covered without editing this test.
    let help = text(&qlab(&["--help"], None).stdout);
    let subcommands: Vec<String> = help
        .split_once("Commands:\n")
        .expect("qlab --help lists its commands")
        .1
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .filter(|c| c != "help")
        .collect();
    for expected in [
        "run",
        "bench",
        "inspect",
        "tui",
        "quantize",
        "isa",
        "completions",
    ] {
        assert!(
            subcommands.iter().any(|c| c == expected),
            "{expected} in {subcommands:?}"
        );
    }
    for sub in &subcommands {
        let sub = sub.as_str();
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

/// Two passing expects, a failing one, then a refused-later command, a later expect and an
/// unparsable line: the script `qlab run --junit/--json` reports on below.
const GATED: &str = "load data test ../../../sample-models/data/digits_test_x.npy labels=../../../sample-models/data/digits_test_y.npy\n\
     load model ../../../sample-models/digits_mlp.onnx\n\
     expect correct(test) >= 300\n\
     expect accuracy(test) > 0.5\n\
     # the MLP gets 387 right\n\
     expect correct(test) == 390\n\
     eval nodata\n\
     expect correct(test) <= 400\n\
     expect nonsense\n";

/// Runs `script_text` saved as `name` in `dir` with `extra` arguments after it.
fn run_script(dir: &Path, name: &str, script_text: &str, extra: &[&str]) -> (PathBuf, Output) {
    let script = dir.join(name);
    std::fs::write(&script, script_text).unwrap();
    let mut args = vec!["run", script.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = qlab(&args, None);
    (script, out)
}

/// An attribute every JUnit consumer requires, as a number when it is a count.
fn count(node: roxmltree::Node<'_, '_>, name: &str) -> usize {
    let value = node
        .attribute(name)
        .unwrap_or_else(|| panic!("<{}> lacks {name}", node.tag_name().name()));
    value.parse().unwrap_or_else(|_| panic!("{name}={value:?}"))
}

/// The JUnit schema's required structure: `<testsuites>` of `<testsuite name tests failures
/// errors>` of `<testcase name classname>`, counts equal to the cases of each kind, and every
/// `<failure>`/`<error>` with a `message`. Returns each test case's name and outcome.
fn check_junit(xml: &str) -> Vec<(String, &'static str)> {
    let doc = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let suites: Vec<_> = root.children().filter(|n| n.is_element()).collect();
    assert_eq!(suites.len(), 1, "one suite per script");
    let suite = suites[0];
    assert_eq!(suite.tag_name().name(), "testsuite");
    assert!(suite.attribute("name").is_some_and(|n| !n.is_empty()));
    let version = suite
        .descendants()
        .find(|n| n.attribute("name") == Some("qlab.version"))
        .and_then(|n| n.attribute("value"));
    assert_eq!(version, Some(env!("CARGO_PKG_VERSION")));
    let mut cases = Vec::new();
    let mut kinds = [0usize; 3];
    for case in suite.children().filter(|n| n.has_tag_name("testcase")) {
        let name = case.attribute("name").expect("testcase name");
        assert!(case.attribute("classname").is_some(), "{name}: classname");
        let outcome = case.children().find(|n| n.is_element());
        let kind = match outcome.map(|n| n.tag_name().name()) {
            None => "passed",
            Some(tag @ ("failure" | "error")) => {
                let message = outcome.unwrap().attribute("message");
                assert!(message.is_some_and(|m| !m.is_empty()), "{name}: message");
                kinds[(tag == "error") as usize] += 1;
                if tag == "failure" { "failure" } else { "error" }
            }
            Some("skipped") => {
                kinds[2] += 1;
                "skipped"
            }
            Some(other) => panic!("{name}: unexpected <{other}>"),
        };
        cases.push((name.to_string(), kind));
    }
    assert_eq!(count(suite, "tests"), cases.len());
    assert_eq!(count(suite, "failures"), kinds[0]);
    assert_eq!(count(suite, "errors"), kinds[1]);
    assert_eq!(count(suite, "skipped"), kinds[2]);
    cases
}

#[test]
fn junit_report_has_one_case_per_expect_and_is_written_on_failure() {
    let dir = scratch("junit");
    let xml_path = dir.join("out.xml");
    let junit = ["--junit", xml_path.to_str().unwrap()];
    // The `&` in the name must come out escaped, or the XML would not parse.
    let (_, out) = run_script(&dir, "gate&co.qls", GATED, &junit);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("ok: correct(test) >= 300"));
    let cases = check_junit(&std::fs::read_to_string(&xml_path).unwrap());
    let expected = [
        ("line 3: expect correct(test) >= 300", "passed"),
        ("line 4: expect accuracy(test) > 0.5", "passed"),
        ("line 6: expect correct(test) == 390", "failure"),
        ("line 8: expect correct(test) <= 400", "skipped"),
    ];
    let expected: Vec<_> = expected.iter().map(|(n, k)| (n.to_string(), *k)).collect();
    assert_eq!(cases, expected);

    // Once the expect holds, the refused `eval` is the error case and the run exits 2.
    let fixed = GATED.replace("== 390", "== 387");
    let (_, out) = run_script(&dir, "gate&co.qls", &fixed, &junit);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let cases = check_junit(&std::fs::read_to_string(&xml_path).unwrap());
    let kinds: Vec<_> = cases.iter().map(|(_, k)| *k).collect();
    assert_eq!(kinds, ["passed", "passed", "passed", "error", "skipped"]);
    assert_eq!(cases[3].0, "line 7: eval nodata");
}

#[test]
fn json_report_lists_each_command_with_its_status() {
    let dir = scratch("json_report");
    let json_path = dir.join("out.json");
    let (_, out) = run_script(
        &dir,
        "g.qls",
        GATED,
        &["--json", json_path.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["qlab_version"], env!("CARGO_PKG_VERSION"));
    let commands = doc["commands"].as_array().unwrap();
    let rows: Vec<(u64, &str)> = commands
        .iter()
        .map(|c| (c["line"].as_u64().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rows,
        [(1, "ok"), (2, "ok"), (3, "ok"), (4, "ok"), (6, "failed")]
    );
    assert!(commands.iter().all(|c| c["elapsed_ms"].as_f64().is_some()));
    // The same text the terminal showed.
    assert!(
        text(&out.stdout).contains(commands[2]["output"].as_str().unwrap()),
        "{}",
        commands[2]
    );
    assert_eq!(commands[2]["expect"]["actual"], 387.0);
    assert_eq!(commands[2]["expect"]["holds"], true);
    assert_eq!(commands[4]["expect"]["holds"], false);
    assert_eq!(commands[4]["expect"]["expected"], 390.0);
    assert!(commands[0].get("expect").is_none());
    let summary = &doc["summary"];
    assert_eq!(summary["result"], "failed");
    assert_eq!(summary["expects_passed"], 2);
    assert_eq!(summary["expects_failed"], 1);
    assert_eq!(summary["expects_skipped"], 1);
    assert_eq!(summary["stopped_at_line"], 6);
}

#[test]
fn an_unwritable_report_path_is_refused_before_the_replay() {
    let dir = scratch("report_paths");
    let kept = dir.join("kept.xml");
    std::fs::write(&kept, "old report").unwrap();
    std::fs::write(dir.join("plain"), "a file, not a directory").unwrap();
    let missing = dir.join("missing/out.json");
    let under_file = dir.join("plain/out.json");
    for (bad, why) in [
        (&missing, "does not exist"),
        (&under_file, "not a directory"),
    ] {
        let args = [
            "--junit",
            kept.to_str().unwrap(),
            "--json",
            bad.to_str().unwrap(),
        ];
        let (_, out) = run_script(&dir, "g.qls", GATED, &args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("--json") && err.contains(why), "{err}");
        assert!(out.stdout.is_empty(), "nothing ran");
        assert_eq!(std::fs::read_to_string(&kept).unwrap(), "old report");
        assert!(!bad.exists());
    }
}

/// `inspect` reads whatever `load model` reads, a saved `NAME.qlab` directory too, with its
/// columns sized to the longest cell.
#[test]
fn inspect_reads_native_models_and_aligns_columns() {
    let dir = scratch("inspect_native");
    let saved = dir.join("cnn.qlab");
    let out = qlab(
        &[],
        Some(&format!(
            "load model sample-models/digits_cnn.onnx\nsave model {}\n",
            saved.display()
        )),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let from_onnx = text(&qlab(&["inspect", "sample-models/digits_cnn.onnx"], None).stdout);
    let out = qlab(&["inspect", saved.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let from_native = text(&out.stdout);
    // Same table; only the title's path differs.
    let body = |s: &str| s.split_once('\n').unwrap().1.to_string();
    assert_eq!(body(&from_native), body(&from_onnx));
    assert!(from_native.contains("14 nodes, 14538 parameters, any batch"));
    // Every column starts at the same offset on every row (attributes vary in length).
    let lines: Vec<Vec<char>> = from_native
        .lines()
        .skip(1)
        .map(|l| l.chars().collect())
        .collect();
    let header: String = lines[0].iter().collect();
    let input_col = header[..header.find("input").unwrap()].chars().count();
    for l in &lines[1..] {
        assert_eq!(
            l[input_col - 2..=input_col],
            [' ', ' ', '['],
            "misaligned:\n{from_native}"
        );
    }
}

/// A mistyped verb, dataset or layer is answered with the nearest known name; `eval` on a
/// dataset without labels reports the converted model's agreement with the float one; once
/// converted, `show model` names each node's quantized op.
#[test]
fn typos_get_a_guess_and_unlabelled_eval_reports_agreement() {
    let out = qlab(
        &[],
        Some(
            "lod model sample-models/digits_cnn.onnx\n\
             load model sample-models/digits_cnn.onnx\n\
             load data calib sample-models/data/digits_calib_x.npy\n\
             load data test sample-models/data/digits_test_x.npy\n\
             eval test\n\
             quantize calib\n\
             eval tset\n\
             eval test\n\
             expect sqnr(test, conv) > 1\n\
             expect sqnr(test, covn2) > 1\n\
             show model\n",
        ),
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        stderr.contains("unknown verb 'lod' (did you mean 'load'? verbs: load,"),
        "{stderr}"
    );
    assert!(stderr.contains("dataset 'test' has no labels and no model is converted"));
    assert!(stderr.contains("no dataset named 'tset' (did you mean 'test'? loaded: calib, test)"));
    assert!(
        stderr.contains("no quantized layer 'conv' (layers: quant, conv1,"),
        "a tie is no guess: {stderr}"
    );
    assert!(stderr.contains("no quantized layer 'covn2' (did you mean 'conv2'? layers: quant,"));
    assert!(
        stdout.contains(
            "test has no labels (load it with labels=PATH for accuracy)\n\
             quantized (fbgemm) top-1 agreement with float on test: 0.997481 (396/397)"
        ),
        "{stdout}"
    );
    let table = stdout.split("path ").nth(1).expect("show model's table");
    assert!(
        table.lines().next().unwrap().ends_with("quantized"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("conv1 ") && l.ends_with("qconv_relu")),
        "{table}"
    );
}

/// `qlab run` prints each command's output as it runs: the first line arrives while the
/// script's slow commands are still running (a pipe, not a terminal: no line buffering to lean
/// on).
#[test]
fn run_output_arrives_line_by_line() {
    use std::io::BufRead;
    let dir = scratch("streaming");
    let script = dir.join("slow.qls");
    std::fs::write(
        &script,
        "load model ../../../sample-models/digits_cnn.onnx\n\
         load data calib ../../../sample-models/data/digits_calib_x.npy\n\
         load data test ../../../sample-models/data/digits_test_x.npy labels=../../../sample-models/data/digits_test_y.npy\n\
         sensitivity test calib=calib\n\
         sensitivity test calib=calib batch=8\n\
         quantize calib\n\
         compare engines fbgemm qnnpack test timing=on\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_qlab"))
        .args(["run", script.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let still_running = child.try_wait().unwrap().is_none();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(child.wait().unwrap().success(), "{first}{rest}");
    assert!(first.starts_with("> load model"), "{first}");
    assert!(
        still_running,
        "the first line came only when the script had ended:\n{first}{rest}"
    );
}
