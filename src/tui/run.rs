//! The terminal side: raw mode and the alternate screen via `ratatui::init` (whose panic hook
//! restores the terminal), mouse capture, and the event loop that feeds keys, the mouse wheel
//! and resizes to the `App`.

use super::app::App;
use ratatui::DefaultTerminal;
use ratatui::crossterm::event::{
    self, DisableMouseCapture, EnableMouseCapture, Event, KeyEventKind, MouseEventKind,
};
use ratatui::crossterm::execute;
use std::io;

/// Runs the TUI until the user quits; the terminal is restored on return and on panic.
pub fn run(mut app: App) -> io::Result<App> {
    let mut terminal = ratatui::init();
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
        terminal.draw(|frame| app.draw(frame))?;
        match event::read()? {
            Event::Key(key) if key.kind == KeyEventKind::Press => app.press(key),
            Event::Mouse(m) => match m.kind {
                MouseEventKind::ScrollDown => app.scroll(1),
                MouseEventKind::ScrollUp => app.scroll(-1),
                _ => {}
            },
            // A resize needs nothing here: the next draw lays out for the new size.
            _ => {}
        }
    }
    Ok(())
}
