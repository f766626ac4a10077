//! The terminal side: raw mode and the alternate screen via `ratatui::init` (whose panic hook
//! restores the terminal), mouse capture, and the event loop that feeds keys, mouse clicks and the
//! wheel and resizes to the `App`.

use super::app::App;
use ratatui::DefaultTerminal;
use ratatui::crossterm::event::{
    self, DisableMouseCapture, EnableMouseCapture, Event, KeyEventKind,
};
use ratatui::crossterm::execute;
use std::io;
use std::time::Duration;

/// How often the screen is redrawn while no event arrives.
const TICK: Duration = Duration::from_millis(100);

/// Whether stdin and stdout are both a terminal, as the TUI needs.
pub fn has_terminal() -> bool {
    use std::io::IsTerminal;
    io::stdin().is_terminal() && io::stdout().is_terminal()
}

/// Runs the TUI until the user quits; the terminal is restored on return and on panic. Without
/// a terminal it is an error, not a panic.
pub fn run(mut app: App) -> io::Result<App> {
    if !has_terminal() {
        return Err(io::Error::other("stdin and stdout must be a terminal"));
    }
    let mut terminal = ratatui::try_init()?;
    // ratatui's hook restores raw mode and the screen; mouse capture is ours to undo first.
    let restore = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = execute!(io::stdout(), DisableMouseCapture);
        restore(info);
    }));
    let result = execute!(io::stdout(), EnableMouseCapture)
        .and_then(|()| event_loop(&mut terminal, &mut app));
    let _ = execute!(io::stdout(), DisableMouseCapture);
    ratatui::restore();
    result.map(|()| app)
}

fn event_loop(terminal: &mut DefaultTerminal, app: &mut App) -> io::Result<()> {
    while !app.quit {
        app.tick();
        terminal.draw(|frame| app.draw(frame))?;
        // Waiting with a timeout keeps the engine-speed gauge moving between key presses.
        if !event::poll(TICK)? {
            continue;
        }
        match event::read()? {
            Event::Key(key) if key.kind == KeyEventKind::Press => app.press(key),
            Event::Mouse(m) => app.mouse(m),
            // A resize needs nothing here: the next draw lays out for the new size.
            _ => {}
        }
    }
    // Cancels a measurement in progress and waits for its thread.
    app.speed = None;
    Ok(())
}
