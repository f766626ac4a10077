//! The real `qlab tui` in a pseudo-terminal (tmux): wait for the panes, select a layer, switch
//! its observer, measure engine speed, `:save session`, quit, then `qlab run` the saved file. Needs `tmux` (CI
//! installs it); without it the test says so and passes.

use crate::support::{self, root};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A fresh scratch directory for test `name`, or `None` (after saying so) when tmux is missing.
fn scratch(name: &str) -> Option<PathBuf> {
    if Command::new("tmux").arg("-V").output().is_err() {
        support::skip(name, "tmux is not installed (.ci/run installs it)");
        return None;
    }
    Some(support::scratch(name))
}

/// tmux on a private socket, so no user session is touched.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    /// A fresh tmux server under `dir` running `command` (with `env` set) in session `qlab`,
    /// `rows` tall, from the checkout's root.
    fn start(dir: &Path, rows: u16, env: &[String], command: &str) -> Tmux {
        Tmux::start_in(dir, root(), rows, env, command)
    }

    /// [`Tmux::start`] with `cwd` as the working directory.
    fn start_in(dir: &Path, cwd: &Path, rows: u16, env: &[String], command: &str) -> Tmux {
        let tmux = Tmux {
            socket: dir.join("tmux.sock"),
        };
        let rows = rows.to_string();
        let mut args = vec!["new-session", "-d", "-s", "qlab", "-x", "120", "-y", &rows];
        args.extend(["-c", cwd.to_str().unwrap()]);
        for e in env {
            args.extend(["-e", e.as_str()]);
        }
        args.push(command);
        let started = tmux.run(&args);
        assert!(started.status.success(), "{started:?}");
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap()
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "qlab"]).stdout)
            .into_owned()
    }

    /// Everything the pane has shown, scrollback included, wrapped lines joined.
    fn history(&self) -> String {
        String::from_utf8_lossy(
            &self
                .run(&["capture-pane", "-p", "-J", "-S", "-", "-t", "qlab"])
                .stdout,
        )
        .into_owned()
    }

    fn keys(&self, literal: &str) {
        assert!(
            self.run(&["send-keys", "-t", "qlab", "-l", literal])
                .status
                .success()
        );
    }

    fn alive(&self) -> bool {
        self.run(&["has-session", "-t", "qlab"]).status.success()
    }

    /// Polls until `done` holds, failing with the screen after `secs`.
    fn wait(&self, secs: u64, what: &str, done: impl Fn(&Tmux) -> bool) {
        let start = Instant::now();
        while !done(self) {
            assert!(
                start.elapsed() < Duration::from_secs(secs),
                "timed out waiting for {what}; screen:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

#[test]
fn tui_in_a_terminal_saves_a_session_that_qlab_run_replays() {
    let Some(dir) = scratch("tui-e2e") else {
        return;
    };
    let session = dir.join("saved.qls");
    let tmux = Tmux::start(
        &dir,
        40,
        &[],
        &format!("{} tui", env!("CARGO_BIN_EXE_qlab")),
    );
    tmux.wait(300, "the panes", |t| t.screen().contains("SQNR dB"));
    // conv1, its observer switched to min/max, then saved.
    tmux.keys("j1");
    tmux.wait(60, "the new observer", |t| {
        t.screen().contains("qconfig conv1 activation=minmax")
    });
    // The engine-speed pane measures in the background; the log reports the totals.
    tmux.keys("e");
    tmux.wait(120, "the engine-speed totals", |t| {
        t.screen().contains("engine speed: latency")
    });
    tmux.keys("e");
    tmux.keys(&format!(":save session {}", session.display()));
    assert!(
        tmux.run(&["send-keys", "-t", "qlab", "Enter"])
            .status
            .success()
    );
    tmux.wait(60, "the saved session", |_| session.exists());
    tmux.keys("q");
    tmux.wait(30, "qlab to quit", |t| !t.alive());

    let saved = std::fs::read_to_string(&session).unwrap();
    assert!(saved.contains("quantize calib"), "{saved}");
    assert!(saved.contains("qconfig conv1 activation=minmax"), "{saved}");
    let replay = Command::new(env!("CARGO_BIN_EXE_qlab"))
        .args(["run", session.to_str().unwrap()])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    assert!(String::from_utf8_lossy(&replay.stdout).contains("command(s) replayed"));
}

/// The REPL in a terminal keeps typed-ahead lines and runs every line of a paste, in order,
/// and `exit` ends it.
#[test]
fn repl_runs_typed_ahead_and_pasted_lines_and_exits() {
    let Some(dir) = scratch("repl-e2e") else {
        return;
    };
    let history = format!("QLAB_HISTORY={}", dir.join("history").display());
    let tmux = Tmux::start(&dir, 60, &[history], env!("CARGO_BIN_EXE_qlab"));
    tmux.wait(120, "the prompt", |t| t.screen().contains("qlab>"));
    // Three lines typed ahead in one burst.
    let typed = tmux.run(&[
        "send-keys",
        "-t",
        "qlab",
        "help load",
        "Enter",
        "help eval",
        "Enter",
        "help save",
        "Enter",
    ]);
    assert!(typed.status.success());
    tmux.wait(30, "the three typed lines", |t| {
        t.screen().contains("save model PATH.qlab")
    });
    // Two lines pasted at once (bracketed paste).
    tmux.run(&["set-buffer", "help show\nhelp fuse\n"]);
    tmux.run(&["paste-buffer", "-p", "-t", "qlab"]);
    tmux.run(&["send-keys", "-t", "qlab", "Enter"]);
    tmux.wait(30, "the two pasted lines", |t| {
        let s = t.screen();
        s.contains("show model | show qparams") && s.contains("fuse auto")
    });
    let screen = tmux.screen();
    let order: Vec<usize> = [
        "load model PATH",
        "eval DATA",
        "save model PATH",
        "show model |",
    ]
    .iter()
    .map(|w| {
        screen
            .find(w)
            .unwrap_or_else(|| panic!("{w} missing:\n{screen}"))
    })
    .collect();
    assert!(
        order.windows(2).all(|p| p[0] < p[1]),
        "out of order:\n{screen}"
    );
    tmux.keys("exit");
    tmux.run(&["send-keys", "-t", "qlab", "Enter"]);
    tmux.wait(30, "the REPL to exit", |t| !t.alive());
}

/// `qlab tui FILE` whose line fails opens at that line, the error in the log, instead of
/// exiting: the user fixes it interactively.
#[test]
fn tui_opens_at_a_failing_script_line() {
    let Some(dir) = scratch("tui-failing") else {
        return;
    };
    let script = dir.join("fail.qls");
    std::fs::write(
        &script,
        "load model ../../../sample-models/digits_cnn.onnx\n\
         load data test ../../../sample-models/data/digits_test_x.npy labels=../../../sample-models/data/digits_test_y.npy\n\
         expect correct(test) == 999\n\
         eval test\n",
    )
    .unwrap();
    let command = format!("{} tui {}", env!("CARGO_BIN_EXE_qlab"), script.display());
    let tmux = Tmux::start(&dir, 40, &[], &command);
    tmux.wait(120, "the failing line in the log", |t| {
        let s = t.screen();
        s.contains("line 3") && s.contains("(actual 395)")
    });
    // The lines after the failure did not run.
    assert!(!tmux.screen().contains("> eval test"), "{}", tmux.screen());
    tmux.keys("q");
    tmux.wait(30, "qlab to quit", |t| !t.alive());
}

/// The README's session block (the fenced block under "The session language").
fn readme_session_block() -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split_once("### The session language")
        .expect("README has the session language section")
        .1;
    let block = section.split_once("```\n").expect("a fenced block").1;
    block
        .split_once("```")
        .expect("the block ends")
        .0
        .to_string()
}

/// A scratch directory from which the README's relative paths resolve.
fn readme_dir(name: &str) -> Option<PathBuf> {
    let dir = scratch(name)?;
    std::os::unix::fs::symlink(root().join("sample-models"), dir.join("sample-models")).unwrap();
    Some(dir)
}

/// Digits become `#`: latency figures differ between two runs of the same command.
fn digitless(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .collect()
}

/// The README's whole session block, pasted into the REPL in one write (a bracketed paste, as
/// a terminal sends it) and entered, runs every command in order: each command's output, as
/// `qlab run` prints it for the same block, appears in the terminal, and nothing fails.
#[test]
fn readme_session_block_pasted_into_the_repl_runs_every_command() {
    let (Some(piped), Some(pasted)) = (readme_dir("readme-run"), readme_dir("readme-paste")) else {
        return;
    };
    let block = readme_session_block();
    let commands = block
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .count();
    assert!(commands >= 30, "the README block has {commands} commands");
    // The reference: `qlab run` of the same block prints `> command` then its output.
    std::fs::write(piped.join("block.qls"), &block).unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_qlab"))
        .args(["run", "block.qls"])
        .current_dir(&piped)
        .output()
        .unwrap();
    let reference = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "every README command runs:\n{reference}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let firsts: Vec<(&str, &str)> = reference
        .split("\n> ")
        .skip(1)
        .filter_map(|chunk| {
            let (command, output) = chunk.split_once('\n')?;
            let first = output.lines().next().filter(|l| !l.starts_with("> "))?;
            Some((command, first))
        })
        .collect();
    assert!(firsts.len() >= commands - 1, "{reference}");

    let history = format!("QLAB_HISTORY={}", pasted.join("history").display());
    let tmux = Tmux::start_in(&pasted, &pasted, 50, &[history], env!("CARGO_BIN_EXE_qlab"));
    tmux.wait(120, "the prompt", |t| t.screen().contains("qlab>"));
    tmux.run(&["set-buffer", &block]);
    assert!(
        tmux.run(&["paste-buffer", "-p", "-t", "qlab"])
            .status
            .success()
    );
    tmux.run(&["send-keys", "-t", "qlab", "Enter"]);
    let saved = pasted.join("my.qls");
    tmux.wait(
        600,
        "the block's last command (save session my.qls)",
        |_| saved.exists(),
    );
    tmux.wait(30, "the prompt after the block", |t| {
        t.history().trim_end().ends_with("qlab>")
    });
    let shown = digitless(&tmux.history());
    assert!(!shown.contains("error:"), "a command failed:\n{shown}");
    let mut from = 0;
    for (command, first) in firsts {
        let at = shown[from..].find(&digitless(first)).unwrap_or_else(|| {
            panic!("no output of `{command}` ({first}) after offset {from}:\n{shown}")
        });
        from += at + digitless(first).len();
    }
}
