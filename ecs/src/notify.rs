//! Change notifications: the in-process hub that commits publish to, and
//! [`MqClient`], one subscriber connection with hetu's MQ semantics
//! (docs/ecs.md, "Notifications").
//!
//! A message is only a channel name; subscribers re-read the database.
//! Commits publish after their write is acknowledged at the durability it
//! asked for, so a subscriber that re-reads sees the change; a failed commit
//! publishes nothing. Delivery is in-process (one process owns the database,
//! the contract's scope), through one crossbeam channel per client.
//!
//! Threads: the hub is shared by all commits (a reader-writer lock over the
//! channel map; publishing takes it shared). An `MqClient` belongs to one
//! thread at a time (`&mut self`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::RwLock;

use crate::error::{Error, Result};

/// Batching window of [`MqClient::get_message`]: a channel is returned once
/// it has been queued this long (hetu's 1 / UPDATE_FREQUENCY).
pub const MERGE_WINDOW: Duration = Duration::from_millis(100);
/// Queued notifications older than this are dropped at the next pull
/// (backlog protection).
pub const BACKLOG_MAX_AGE: Duration = Duration::from_secs(120);
/// Past this many subscribed channels a client logs a warning.
pub const CHANNELS_WARN: usize = 5000;

/// Where commits publish; clients subscribe here.
#[derive(Default)]
pub(crate) struct Hub {
    /// channel -> (client id, its sender).
    subscribers: RwLock<HashMap<String, Vec<(u64, Sender<String>)>>>,
    /// Number of (client, channel) subscriptions; 0 lets commits skip
    /// building channel names.
    subscriptions: AtomicUsize,
    next_client: AtomicU64,
    pub(crate) closed: AtomicBool,
}

impl Hub {
    /// True when anyone listens on any channel.
    pub(crate) fn has_subscribers(&self) -> bool {
        self.subscriptions.load(Ordering::Acquire) > 0
    }

    /// Sends `channel` to every client subscribed to it.
    pub(crate) fn publish(&self, channels: &[String]) {
        let subs = self.subscribers.read();
        for ch in channels {
            if let Some(list) = subs.get(ch) {
                for (_, tx) in list {
                    // A client that went away without unsubscribing is
                    // simply not listening any more.
                    let _ = tx.send(ch.clone());
                }
            }
        }
    }

    fn subscribe(&self, client: u64, tx: &Sender<String>, channel: &str) {
        let mut subs = self.subscribers.write();
        let list = subs.entry(channel.to_string()).or_default();
        if !list.iter().any(|(c, _)| *c == client) {
            list.push((client, tx.clone()));
            self.subscriptions.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn unsubscribe(&self, client: u64, channel: &str) {
        let mut subs = self.subscribers.write();
        if let Some(list) = subs.get_mut(channel) {
            let before = list.len();
            list.retain(|(c, _)| *c != client);
            if list.len() < before {
                self.subscriptions.fetch_sub(1, Ordering::AcqRel);
            }
            if list.is_empty() {
                subs.remove(channel);
            }
        }
    }
}

/// One subscriber connection: subscribe to channels, then [`MqClient::pull`]
/// and [`MqClient::get_message`]. Only notifications published after a
/// subscribe are delivered. Unsubscribes everything when dropped.
pub struct MqClient {
    id: u64,
    hub: Arc<Hub>,
    tx: Sender<String>,
    rx: Receiver<String>,
    channels: HashSet<String>,
    /// (receive time, channel), oldest first; a channel appears once.
    queue: VecDeque<(Instant, String)>,
    queued: HashSet<String>,
    dropped_backlog: u64,
}

impl MqClient {
    pub(crate) fn new(hub: Arc<Hub>) -> MqClient {
        let (tx, rx) = crossbeam_channel::unbounded();
        MqClient {
            id: hub.next_client.fetch_add(1, Ordering::Relaxed),
            hub,
            tx,
            rx,
            channels: HashSet::new(),
            queue: VecDeque::new(),
            queued: HashSet::new(),
            dropped_backlog: 0,
        }
    }

    fn check_open(&self) -> Result<()> {
        if self.hub.closed.load(Ordering::Acquire) {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    /// Starts receiving `channel`'s notifications (from now on).
    pub fn subscribe(&mut self, channel: &str) -> Result<()> {
        self.check_open()?;
        if self.channels.insert(channel.to_string()) {
            self.hub.subscribe(self.id, &self.tx, channel);
            if self.channels.len() == CHANNELS_WARN + 1 {
                eprintln!(
                    "warning: MQ client {} subscribes to more than {CHANNELS_WARN} channels",
                    self.id
                );
            }
        }
        Ok(())
    }

    /// Stops receiving `channel`; queued notifications of it are dropped.
    /// Unsubscribing a channel not subscribed is a no-op.
    pub fn unsubscribe(&mut self, channel: &str) -> Result<()> {
        self.check_open()?;
        if self.channels.remove(channel) {
            self.hub.unsubscribe(self.id, channel);
            if self.queued.remove(channel) {
                self.queue.retain(|(_, c)| c != channel);
            }
        }
        Ok(())
    }

    /// The subscribed channels, sorted.
    pub fn subscribed_channels(&self) -> Vec<String> {
        let mut v: Vec<String> = self.channels.iter().cloned().collect();
        v.sort();
        v
    }

    /// Notifications dropped by backlog protection so far.
    pub fn dropped_backlog(&self) -> u64 {
        self.dropped_backlog
    }

    /// Waits up to `timeout` for one notification, then takes every other
    /// one already waiting; drops queued entries older than
    /// [`BACKLOG_MAX_AGE`] and merges duplicates (a channel already queued
    /// keeps its first receive time). Returns true if anything arrived.
    pub fn pull(&mut self, timeout: Duration) -> Result<bool> {
        self.check_open()?;
        let first = match self.rx.recv_timeout(timeout) {
            Ok(ch) => ch,
            Err(RecvTimeoutError::Timeout) => return Ok(false),
            Err(RecvTimeoutError::Disconnected) => return Err(Error::Closed),
        };
        let now = Instant::now();
        while let Some((t, _)) = self.queue.front() {
            if now.duration_since(*t) <= BACKLOG_MAX_AGE {
                break;
            }
            let (_, ch) = self.queue.pop_front().expect("front exists");
            self.queued.remove(&ch);
            self.dropped_backlog += 1;
        }
        if self.dropped_backlog > 0 && self.dropped_backlog % 1000 == 1 {
            eprintln!(
                "warning: MQ client {} dropped notifications older than 120 s",
                self.id
            );
        }
        self.enqueue(now, first);
        while let Ok(ch) = self.rx.try_recv() {
            self.enqueue(now, ch);
        }
        Ok(true)
    }

    fn enqueue(&mut self, at: Instant, channel: String) {
        if self.channels.contains(&channel) && self.queued.insert(channel.clone()) {
            self.queue.push_back((at, channel));
        }
    }

    /// Waits up to `timeout` for channels that have been queued longer than
    /// [`MERGE_WINDOW`], pulling as needed, and returns (and removes) them.
    /// An empty set means the timeout passed first.
    pub fn get_message(&mut self, timeout: Duration) -> Result<HashSet<String>> {
        self.check_open()?;
        let deadline = Instant::now() + timeout;
        loop {
            let now = Instant::now();
            let mut ready = HashSet::new();
            while let Some((t, _)) = self.queue.front() {
                if now.duration_since(*t) < MERGE_WINDOW {
                    break;
                }
                let (_, ch) = self.queue.pop_front().expect("front exists");
                self.queued.remove(&ch);
                ready.insert(ch);
            }
            if !ready.is_empty() || now >= deadline {
                return Ok(ready);
            }
            let wait = match self.queue.front() {
                Some((t, _)) => (*t + MERGE_WINDOW).saturating_duration_since(now),
                None => deadline - now,
            };
            self.pull(wait.min(deadline - now))?;
        }
    }
}

impl Drop for MqClient {
    fn drop(&mut self) {
        for ch in self.channels.drain() {
            self.hub.unsubscribe(self.id, &ch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_merge_and_wait_for_the_window() {
        let hub = Arc::new(Hub::default());
        let mut c = MqClient::new(hub.clone());
        c.subscribe("a").unwrap();
        c.subscribe("b").unwrap();
        assert!(hub.has_subscribers());
        hub.publish(&["a".into(), "a".into(), "b".into(), "zzz".into()]);
        let start = Instant::now();
        let got = c.get_message(Duration::from_secs(2)).unwrap();
        assert!(start.elapsed() >= MERGE_WINDOW);
        assert_eq!(got, HashSet::from(["a".to_string(), "b".to_string()]));
        assert!(c
            .get_message(Duration::from_millis(150))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn unsubscribe_stops_delivery_and_drop_cleans_up() {
        let hub = Arc::new(Hub::default());
        let mut c = MqClient::new(hub.clone());
        c.subscribe("a").unwrap();
        c.unsubscribe("a").unwrap();
        c.unsubscribe("a").unwrap();
        hub.publish(&["a".into()]);
        assert!(c
            .get_message(Duration::from_millis(150))
            .unwrap()
            .is_empty());
        c.subscribe("b").unwrap();
        drop(c);
        assert!(!hub.has_subscribers());
    }
}
