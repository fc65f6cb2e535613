//! Watch registrations of one front core and ZooKeeper's trigger rules (`WatchManager`).
//!
//! Two tables, as ZooKeeper keeps: *data* (getData/exists watches, persistent, recursive) and
//! *child* (getChildren watches, persistent). A watcher is a connection. Per table a connection
//! has one mode per path, the last registration winning. Standard watches fire once; persistent
//! ones stay; recursive ones (data table only) also fire for every path below theirs, except for
//! NodeChildrenChanged. One trigger yields at most one event per connection.

use crate::proto::event;
use crate::tree::{path, Trigger};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

pub type ConnId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    Standard,
    Persistent,
    PersistentRecursive,
}

/// Which watches removeWatches/checkWatches name (`WatcherType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatcherType {
    Children = 1,
    Data = 2,
    Any = 3,
    Persistent = 4,
    PersistentRecursive = 5,
}

impl WatcherType {
    pub fn from_i32(v: i32) -> Option<WatcherType> {
        Some(match v {
            1 => WatcherType::Children,
            2 => WatcherType::Data,
            3 => WatcherType::Any,
            4 => WatcherType::Persistent,
            5 => WatcherType::PersistentRecursive,
            _ => return None,
        })
    }
}

#[derive(Debug, Default)]
struct Table {
    by_path: HashMap<Arc<str>, HashMap<ConnId, Mode>>,
    recursive: usize,
}

impl Table {
    fn add(&mut self, path: &str, conn: ConnId, mode: Mode) {
        let entry = self.by_path.entry(Arc::from(path)).or_default();
        let old = entry.insert(conn, mode);
        if old == Some(Mode::PersistentRecursive) {
            self.recursive -= 1;
        }
        if mode == Mode::PersistentRecursive {
            self.recursive += 1;
        }
    }

    fn remove_if(&mut self, path: &str, conn: ConnId, keep: impl Fn(Mode) -> bool) -> bool {
        let Some(entry) = self.by_path.get_mut(path) else { return false };
        let Some(&mode) = entry.get(&conn) else { return false };
        if keep(mode) {
            return false;
        }
        entry.remove(&conn);
        if mode == Mode::PersistentRecursive {
            self.recursive -= 1;
        }
        if entry.is_empty() {
            self.by_path.remove(path);
        }
        true
    }

    fn has(&self, path: &str, conn: ConnId, want: impl Fn(Mode) -> bool) -> bool {
        self.by_path.get(path).and_then(|e| e.get(&conn)).is_some_and(|m| want(*m))
    }

    /// ZooKeeper's `triggerWatch`: collects the connections to notify, removing one-shot watches.
    fn trigger(&mut self, target: &str, event_type: i32, suppress: &HashSet<ConnId>, out: &mut Vec<ConnId>) {
        let mut hit: HashSet<ConnId> = HashSet::new();
        let mut local = target;
        loop {
            let at_target = local == target;
            if let Some(entry) = self.by_path.get_mut(local) {
                let mut fired_standard = Vec::new();
                for (&conn, &mode) in entry.iter() {
                    match mode {
                        Mode::PersistentRecursive => {
                            if event_type != event::NODE_CHILDREN_CHANGED {
                                hit.insert(conn);
                            }
                        }
                        _ if at_target => {
                            hit.insert(conn);
                            if mode == Mode::Standard {
                                fired_standard.push(conn);
                            }
                        }
                        _ => {}
                    }
                }
                for conn in fired_standard {
                    entry.remove(&conn);
                }
                if entry.is_empty() {
                    self.by_path.remove(local);
                }
            }
            if self.recursive == 0 || local == "/" {
                break;
            }
            local = path::parent(local);
        }
        let mut hit: Vec<ConnId> = hit.into_iter().filter(|c| !suppress.contains(c)).collect();
        hit.sort_unstable();
        out.extend(hit);
    }

    fn drop_conn(&mut self, conn: ConnId) {
        let mut recursive_dropped = 0;
        self.by_path.retain(|_, entry| {
            if entry.remove(&conn) == Some(Mode::PersistentRecursive) {
                recursive_dropped += 1;
            }
            !entry.is_empty()
        });
        self.recursive -= recursive_dropped;
    }

    fn count(&self) -> usize {
        self.by_path.values().map(|e| e.len()).sum()
    }
}

/// An event to deliver: to `conn`, `event_type` on `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    pub conn: ConnId,
    pub event_type: i32,
    pub path: Arc<str>,
}

/// The watches registered on one front core.
#[derive(Debug, Default)]
pub struct WatchTable {
    data: Table,
    child: Table,
}

impl WatchTable {
    pub fn new() -> WatchTable {
        WatchTable::default()
    }

    /// getData / exists watch (also what setWatches re-registers for data and exist watches).
    pub fn add_data(&mut self, path: &str, conn: ConnId) {
        self.data.add(path, conn, Mode::Standard);
    }

    pub fn add_child(&mut self, path: &str, conn: ConnId) {
        self.child.add(path, conn, Mode::Standard);
    }

    /// addWatch: persistent goes in both tables, recursive in the data table only.
    pub fn add_persistent(&mut self, path: &str, conn: ConnId, recursive: bool) {
        if recursive {
            self.data.add(path, conn, Mode::PersistentRecursive);
        } else {
            self.data.add(path, conn, Mode::Persistent);
            self.child.add(path, conn, Mode::Persistent);
        }
    }

    /// Fires the watches a trigger touches, in ZooKeeper's order, appending to `out`.
    pub fn trigger(&mut self, trigger: &Trigger, out: &mut Vec<Fired>) {
        let mut conns = Vec::new();
        let none = HashSet::new();
        let (path, event_type) = match trigger {
            Trigger::Created(p) => {
                self.data.trigger(p, event::NODE_CREATED, &none, &mut conns);
                (p, event::NODE_CREATED)
            }
            Trigger::DataChanged(p) => {
                self.data.trigger(p, event::NODE_DATA_CHANGED, &none, &mut conns);
                (p, event::NODE_DATA_CHANGED)
            }
            Trigger::Deleted(p) => {
                self.data.trigger(p, event::NODE_DELETED, &none, &mut conns);
                let suppress: HashSet<ConnId> = conns.iter().copied().collect();
                self.child.trigger(p, event::NODE_DELETED, &suppress, &mut conns);
                (p, event::NODE_DELETED)
            }
            Trigger::ChildrenChanged(p) => {
                self.child.trigger(p, event::NODE_CHILDREN_CHANGED, &none, &mut conns);
                (p, event::NODE_CHILDREN_CHANGED)
            }
        };
        out.extend(conns.into_iter().map(|conn| Fired { conn, event_type, path: path.clone() }));
    }

    /// removeWatches: true if something was removed (else the client gets NOWATCHER).
    pub fn remove(&mut self, path: &str, conn: ConnId, kind: WatcherType) -> bool {
        match kind {
            WatcherType::Children => self.child.remove_if(path, conn, |_| false),
            WatcherType::Data => self.data.remove_if(path, conn, |_| false),
            WatcherType::Any => {
                let c = self.child.remove_if(path, conn, |_| false);
                let d = self.data.remove_if(path, conn, |_| false);
                c || d
            }
            WatcherType::Persistent => {
                let c = self.child.remove_if(path, conn, |m| m != Mode::Persistent);
                let d = self.data.remove_if(path, conn, |m| m != Mode::Persistent);
                c || d
            }
            WatcherType::PersistentRecursive => self.data.remove_if(path, conn, |m| m != Mode::PersistentRecursive),
        }
    }

    /// checkWatches: whether `conn` has a watch of this type on `path`.
    pub fn contains(&self, path: &str, conn: ConnId, kind: WatcherType) -> bool {
        match kind {
            WatcherType::Children => self.child.has(path, conn, |_| true),
            WatcherType::Data => self.data.has(path, conn, |_| true),
            WatcherType::Any => self.child.has(path, conn, |_| true) || self.data.has(path, conn, |_| true),
            WatcherType::Persistent => self.data.has(path, conn, |m| m == Mode::Persistent),
            WatcherType::PersistentRecursive => self.data.has(path, conn, |m| m == Mode::PersistentRecursive),
        }
    }

    /// Forgets every watch of a closed connection.
    pub fn drop_conn(&mut self, conn: ConnId) {
        self.data.drop_conn(conn);
        self.child.drop_conn(conn);
    }

    /// Total registrations (both tables), as `wchs` counts.
    pub fn count(&self) -> usize {
        self.data.count() + self.child.count()
    }

    /// (path, conn) pairs of both tables, sorted and deduplicated, for `wchc`/`wchp`.
    pub fn pairs(&self) -> Vec<(Arc<str>, ConnId)> {
        let mut v: Vec<(Arc<str>, ConnId)> = Vec::new();
        for table in [&self.data, &self.child] {
            for (p, entry) in &table.by_path {
                v.extend(entry.keys().map(|c| (p.clone(), *c)));
            }
        }
        v.sort();
        v.dedup();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fire(t: &mut WatchTable, trig: Trigger) -> Vec<(ConnId, i32)> {
        let mut out = Vec::new();
        t.trigger(&trig, &mut out);
        out.into_iter().map(|f| (f.conn, f.event_type)).collect()
    }

    fn p(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    #[test]
    fn standard_watches_fire_once() {
        let mut t = WatchTable::new();
        t.add_data("/a", 1);
        assert_eq!(fire(&mut t, Trigger::DataChanged(p("/a"))), vec![(1, event::NODE_DATA_CHANGED)]);
        assert!(fire(&mut t, Trigger::DataChanged(p("/a"))).is_empty());
        assert_eq!(t.count(), 0);
    }

    #[test]
    fn delete_sends_one_event_per_connection() {
        let mut t = WatchTable::new();
        t.add_data("/a", 1);
        t.add_child("/a", 1);
        t.add_child("/a", 2);
        assert_eq!(fire(&mut t, Trigger::Deleted(p("/a"))), vec![(1, event::NODE_DELETED), (2, event::NODE_DELETED)]);
        assert_eq!(t.count(), 0);
    }

    #[test]
    fn recursive_watches_skip_child_events() {
        let mut t = WatchTable::new();
        t.add_persistent("/a", 9, true);
        assert_eq!(fire(&mut t, Trigger::Created(p("/a/b/c"))), vec![(9, event::NODE_CREATED)]);
        assert!(fire(&mut t, Trigger::ChildrenChanged(p("/a/b"))).is_empty());
        assert!(fire(&mut t, Trigger::Created(p("/ab"))).is_empty());
        assert_eq!(fire(&mut t, Trigger::DataChanged(p("/a"))), vec![(9, event::NODE_DATA_CHANGED)]);
        assert!(t.contains("/a", 9, WatcherType::PersistentRecursive));
    }

    #[test]
    fn persistent_watches_stay_and_see_children() {
        let mut t = WatchTable::new();
        t.add_persistent("/a", 3, false);
        assert_eq!(fire(&mut t, Trigger::ChildrenChanged(p("/a"))), vec![(3, event::NODE_CHILDREN_CHANGED)]);
        assert_eq!(fire(&mut t, Trigger::DataChanged(p("/a"))), vec![(3, event::NODE_DATA_CHANGED)]);
        assert!(fire(&mut t, Trigger::DataChanged(p("/a/b"))).is_empty());
        assert!(t.remove("/a", 3, WatcherType::Persistent));
        assert!(!t.remove("/a", 3, WatcherType::Any));
    }

    #[test]
    fn dropping_a_connection_forgets_its_watches() {
        let mut t = WatchTable::new();
        t.add_persistent("/", 1, true);
        t.add_data("/x", 1);
        t.add_data("/x", 2);
        t.drop_conn(1);
        assert_eq!(fire(&mut t, Trigger::Created(p("/x"))), vec![(2, event::NODE_CREATED)]);
    }
}
