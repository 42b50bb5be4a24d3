//! The deltas of one request as any backend delivers them: a channel the backend fills, and an
//! abort the backend provides, run when the consumer drops the stream before its end.
//!
//! The in-process engine loop sends into the channel from its thread and aborts by a command
//! to that thread; a remote backend fills it from a task reading the worker's stream and
//! aborts by ending that task (which closes the connection). Either way the consumer sees the
//! same type, and an observer (the gateway's meter) sees every delta that was generated.

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use crate::request::Delta;

/// Sees every delta a [`DeltaStream`] hands out, and its end, as they are received: how the
/// gateway meters a request without wrapping the stream. A stream dropped before its end (a
/// client that went away) first shows it the deltas still queued unread, then drops it.
pub trait DeltaObserver: Send + Sync {
    fn on_delta(&mut self, delta: &Delta);
    /// The stream ended (`recv` returned `None`).
    fn on_end(&mut self);
}

/// What a backend runs when a stream is dropped before its last delta.
pub type AbortFn = Box<dyn FnOnce() + Send + Sync>;

/// The deltas of one request, in order; the last one carries `usage`. Dropping it before then
/// aborts the request.
pub struct DeltaStream {
    request_id: String,
    rx: UnboundedReceiver<Delta>,
    abort: Option<AbortFn>,
    finished: bool,
    observer: Option<Box<dyn DeltaObserver>>,
}

impl DeltaStream {
    /// The stream of `request_id` over `rx`; `abort` runs if it is dropped unfinished.
    pub fn new(
        request_id: impl Into<String>,
        rx: UnboundedReceiver<Delta>,
        abort: AbortFn,
    ) -> Self {
        DeltaStream {
            request_id: request_id.into(),
            rx,
            abort: Some(abort),
            finished: false,
            observer: None,
        }
    }

    /// A new stream and the sender a backend fills it through.
    pub fn channel(
        request_id: impl Into<String>,
        abort: AbortFn,
    ) -> (UnboundedSender<Delta>, Self) {
        let (tx, rx) = unbounded_channel();
        (tx, Self::new(request_id, rx, abort))
    }

    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The same stream, reporting what it hands out to `observer`.
    pub fn observed(mut self, observer: Box<dyn DeltaObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The next delta; `None` after the last one (or when the backend is gone).
    pub async fn recv(&mut self) -> Option<Delta> {
        let d = self.rx.recv().await;
        self.note(&d);
        d
    }

    /// `recv` for threads outside a runtime.
    pub fn blocking_recv(&mut self) -> Option<Delta> {
        let d = self.rx.blocking_recv();
        self.note(&d);
        d
    }

    fn note(&mut self, d: &Option<Delta>) {
        match d {
            Some(d) if d.usage.is_some() => self.finished = true,
            None => self.finished = true,
            _ => {}
        }
        if let Some(observer) = &mut self.observer {
            match d {
                Some(d) => observer.on_delta(d),
                None => observer.on_end(),
            }
        }
    }
}

impl Drop for DeltaStream {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Deltas the backend sent that nobody read were generated all the same: the observer
        // (the gateway's meter) sees them, so that an abort bills every token generated before
        // it, but for the step running when the backend gets the abort.
        if let Some(observer) = &mut self.observer {
            while let Ok(d) = self.rx.try_recv() {
                observer.on_delta(&d);
            }
        }
        if let Some(abort) = self.abort.take() {
            abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::request::Usage;

    struct Seen(Arc<Mutex<Vec<String>>>);

    impl DeltaObserver for Seen {
        fn on_delta(&mut self, d: &Delta) {
            self.0.lock().unwrap().push(d.text.clone());
        }
        fn on_end(&mut self) {
            self.0.lock().unwrap().push("<end>".into());
        }
    }

    fn delta(text: &str, usage: Option<Usage>) -> Delta {
        Delta {
            text: text.into(),
            usage,
            ..Delta::empty("r", 0)
        }
    }

    fn counting_abort() -> (Arc<AtomicUsize>, AbortFn) {
        let aborts = Arc::new(AtomicUsize::new(0));
        let a = aborts.clone();
        (
            aborts,
            Box::new(move || {
                a.fetch_add(1, Ordering::SeqCst);
            }),
        )
    }

    #[test]
    fn dropped_unfinished_shows_unread_deltas_then_aborts_once() {
        let (aborts, abort) = counting_abort();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (tx, stream) = DeltaStream::channel("r", abort);
        let mut stream = stream.observed(Box::new(Seen(seen.clone())));
        tx.send(delta("a", None)).unwrap();
        tx.send(delta("b", None)).unwrap();
        assert_eq!(stream.blocking_recv().unwrap().text, "a");
        drop(stream);
        assert_eq!(*seen.lock().unwrap(), ["a", "b"]);
        assert_eq!(aborts.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_stream_read_to_its_usage_delta_is_not_aborted() {
        let (aborts, abort) = counting_abort();
        let (tx, mut stream) = DeltaStream::channel("r", abort);
        tx.send(delta("a", Some(Usage::default()))).unwrap();
        assert!(stream.blocking_recv().unwrap().usage.is_some());
        drop(stream);
        assert_eq!(aborts.load(Ordering::SeqCst), 0);
    }
}
