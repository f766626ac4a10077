//! The key bindings as one table: the help popup and the status line are drawn from it, and
//! `App::handle_key` implements exactly these.

/// `(keys, what they do)`, in the order the help popup lists them.
pub const BINDINGS: [(&str, &str); 20] = [
    (
        "j / k, ↓ / ↑",
        "select a layer (or scroll the focused dump / log)",
    ),
    ("PgDn / PgUp", "move by ten"),
    ("Tab / S-Tab", "focus the next / previous pane"),
    ("o / O", "next / previous activation observer for the layer"),
    (
        "1 … 5",
        "minmax, histogram, percentile, entropy, mse observer",
    ),
    ("s", "sort the error table by the next column (worst first)"),
    (
        "d",
        "diagnose the selected layer (Enter applies the highlighted command)",
    ),
    ("x", "int_repr dump: hex / decimal"),
    ("a", "int_repr dump: weight / output activation"),
    ("f", "int_repr dump: float values under the integers"),
    ("[ / ]", "previous / next input sample for the activation"),
    (
        "e",
        "engine speed pane (per-layer latency vs fp32): open / close",
    ),
    (":", "command line (any session command)"),
    ("Tab (in :)", "complete the word"),
    ("Enter / Esc", "run / close the command line"),
    ("click", "select the layer under the pointer"),
    (
        "mouse wheel",
        "move the selection (or scroll the focused pane)",
    ),
    ("?", "this help (any key closes it)"),
    ("q, :q, Ctrl-C", "quit"),
    (
        ":save session F",
        "write the session, replay with qlab run F",
    ),
];

/// The one-line reminder shown when the command line is closed.
pub const STATUS: &str =
    "j/k select  o observer  d diagnose  s sort  Tab pane  : command  ? help  q quit";
