//! Watch registrations of one front core and ZooKeeper's trigger rules (`WatchManager`, 3.9).
//!
//! Two tables, as ZooKeeper keeps: *data* (getData/exists watches, persistent, recursive) and
//! *child* (getChildren watches, persistent). A watcher is a connection. A (connection, path)
//! entry holds a set of modes, which may coexist as in 3.9: a standard watch fires once, a
//! persistent one stays, a recursive one (data table only) also fires for every path below its
//! own, except for NodeChildrenChanged. One trigger yields at most one event per connection.
//! Whether the connection may see the event (READ on the trigger's ACL) is the caller's check.

use crate::proto::{event, Acl};
use crate::tree::{path, Trigger, TriggerKind};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

pub type ConnId = u64;

const STANDARD: u8 = 1;
const PERSISTENT: u8 = 2;
const RECURSIVE: u8 = 4;

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
    by_path: HashMap<Arc<str>, HashMap<ConnId, u8>>,
    recursive: usize,
    /// (path, connection) entries, kept up to date so counting is O(1) on the read path.
    entries: usize,
}

impl Table {
    fn add(&mut self, path: &str, conn: ConnId, mode: u8) {
        let modes = self
            .by_path
            .entry(Arc::from(path))
            .or_default()
            .entry(conn)
            .or_insert(0);
        if *modes == 0 {
            self.entries += 1;
        }
        if mode == RECURSIVE && *modes & RECURSIVE == 0 {
            self.recursive += 1;
        }
        *modes |= mode;
    }

    /// Clears `mask` from the entry; true if any of those modes were set.
    fn clear(&mut self, path: &str, conn: ConnId, mask: u8) -> bool {
        let Some(entry) = self.by_path.get_mut(path) else {
            return false;
        };
        let Some(modes) = entry.get_mut(&conn) else {
            return false;
        };
        let hit = *modes & mask;
        if hit == 0 {
            return false;
        }
        *modes &= !mask;
        if hit & RECURSIVE != 0 {
            self.recursive -= 1;
        }
        if *modes == 0 {
            entry.remove(&conn);
            self.entries -= 1;
            if entry.is_empty() {
                self.by_path.remove(path);
            }
        }
        true
    }

    fn has(&self, path: &str, conn: ConnId, mask: u8) -> bool {
        self.by_path
            .get(path)
            .and_then(|e| e.get(&conn))
            .is_some_and(|m| m & mask != 0)
    }

    /// ZooKeeper's `triggerWatch`: collects the connections to notify, consuming standard watches.
    fn trigger(&mut self, target: &str, event_type: i32, hit: &mut Vec<ConnId>) {
        let mut local = target;
        loop {
            let at_target = local == target;
            if let Some(entry) = self.by_path.get_mut(local) {
                for (&conn, modes) in entry.iter_mut() {
                    if *modes & RECURSIVE != 0 && event_type != event::NODE_CHILDREN_CHANGED {
                        hit.push(conn);
                    }
                    if at_target && *modes & (STANDARD | PERSISTENT) != 0 {
                        hit.push(conn);
                        *modes &= !STANDARD;
                    }
                }
                let before = entry.len();
                entry.retain(|_, m| *m != 0);
                self.entries -= before - entry.len();
                if entry.is_empty() {
                    self.by_path.remove(local);
                }
            }
            if self.recursive == 0 || local == "/" {
                break;
            }
            local = path::parent(local);
        }
    }

    fn drop_conn(&mut self, conn: ConnId) {
        let mut recursive_dropped = 0;
        let mut dropped = 0;
        self.by_path.retain(|_, entry| {
            if let Some(modes) = entry.remove(&conn) {
                dropped += 1;
                if modes & RECURSIVE != 0 {
                    recursive_dropped += 1;
                }
            }
            !entry.is_empty()
        });
        self.recursive -= recursive_dropped;
        self.entries -= dropped;
    }

    fn count(&self) -> usize {
        debug_assert_eq!(
            self.entries,
            self.by_path.values().map(|e| e.len()).sum::<usize>()
        );
        self.entries
    }
}

/// An event to deliver: to `conn`, `event_type` on `path`, if `conn` may READ under `acl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    pub conn: ConnId,
    pub event_type: i32,
    pub path: Arc<str>,
    pub acl: Arc<Vec<Acl>>,
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
        self.data.add(path, conn, STANDARD);
    }

    pub fn add_child(&mut self, path: &str, conn: ConnId) {
        self.child.add(path, conn, STANDARD);
    }

    /// addWatch: persistent goes in both tables, recursive in the data table only.
    pub fn add_persistent(&mut self, path: &str, conn: ConnId, recursive: bool) {
        if recursive {
            self.data.add(path, conn, RECURSIVE);
        } else {
            self.data.add(path, conn, PERSISTENT);
            self.child.add(path, conn, PERSISTENT);
        }
    }

    /// Fires the watches a trigger touches, in ZooKeeper's order, appending to `out`.
    pub fn trigger(&mut self, trigger: &Trigger, out: &mut Vec<Fired>) {
        let mut conns = Vec::new();
        let p = &trigger.path;
        let event_type = match trigger.kind {
            TriggerKind::Created => {
                self.data.trigger(p, event::NODE_CREATED, &mut conns);
                event::NODE_CREATED
            }
            TriggerKind::DataChanged => {
                self.data.trigger(p, event::NODE_DATA_CHANGED, &mut conns);
                event::NODE_DATA_CHANGED
            }
            TriggerKind::Deleted => {
                // The child table's NodeDeleted is suppressed for connections the data table
                // already notified; their child watches are consumed all the same.
                self.data.trigger(p, event::NODE_DELETED, &mut conns);
                self.child.trigger(p, event::NODE_DELETED, &mut conns);
                event::NODE_DELETED
            }
            TriggerKind::ChildrenChanged => {
                self.child
                    .trigger(p, event::NODE_CHILDREN_CHANGED, &mut conns);
                event::NODE_CHILDREN_CHANGED
            }
        };
        let mut seen = HashSet::new();
        conns.retain(|c| seen.insert(*c));
        conns.sort_unstable();
        out.extend(conns.into_iter().map(|conn| Fired {
            conn,
            event_type,
            path: p.clone(),
            acl: trigger.acl.clone(),
        }));
    }

    /// removeWatches (3.9 rules): true if something was removed, else the client gets NOWATCHER.
    pub fn remove(&mut self, path: &str, conn: ConnId, kind: WatcherType) -> bool {
        match kind {
            WatcherType::Children => self.child.clear(path, conn, STANDARD),
            WatcherType::Data => self.data.clear(path, conn, STANDARD),
            WatcherType::Any => {
                let c = self
                    .child
                    .clear(path, conn, STANDARD | PERSISTENT | RECURSIVE);
                let d = self
                    .data
                    .clear(path, conn, STANDARD | PERSISTENT | RECURSIVE);
                c || d
            }
            WatcherType::Persistent => {
                let c = self.child.clear(path, conn, PERSISTENT);
                let d = self.data.clear(path, conn, PERSISTENT);
                c || d
            }
            WatcherType::PersistentRecursive => self.data.clear(path, conn, RECURSIVE),
        }
    }

    /// checkWatches: whether `conn` has a watch of this type on `path`.
    pub fn contains(&self, path: &str, conn: ConnId, kind: WatcherType) -> bool {
        let all = STANDARD | PERSISTENT | RECURSIVE;
        match kind {
            WatcherType::Children => self.child.has(path, conn, STANDARD),
            WatcherType::Data => self.data.has(path, conn, STANDARD),
            WatcherType::Any => self.child.has(path, conn, all) || self.data.has(path, conn, all),
            WatcherType::Persistent => self.data.has(path, conn, PERSISTENT),
            WatcherType::PersistentRecursive => self.data.has(path, conn, RECURSIVE),
        }
    }

    /// Forgets every watch of a closed connection.
    pub fn drop_conn(&mut self, conn: ConnId) {
        self.data.drop_conn(conn);
        self.child.drop_conn(conn);
    }

    /// Registrations in both tables, as mntr's zk_watch_count counts.
    pub fn count(&self) -> usize {
        self.data.count() + self.child.count()
    }

    /// (path, conn) pairs of the data table, sorted, as `wchs`/`wchc`/`wchp` report.
    pub fn data_pairs(&self) -> Vec<(Arc<str>, ConnId)> {
        let mut v: Vec<(Arc<str>, ConnId)> = Vec::new();
        for (p, entry) in &self.data.by_path {
            v.extend(entry.keys().map(|c| (p.clone(), *c)));
        }
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fire(t: &mut WatchTable, kind: TriggerKind, path: &str) -> Vec<(ConnId, i32)> {
        let mut out = Vec::new();
        let trig = Trigger {
            kind,
            path: Arc::from(path),
            acl: Arc::new(Acl::open_unsafe()),
        };
        t.trigger(&trig, &mut out);
        out.into_iter().map(|f| (f.conn, f.event_type)).collect()
    }

    use TriggerKind::*;

    #[test]
    fn standard_watches_fire_once() {
        let mut t = WatchTable::new();
        t.add_data("/a", 1);
        assert_eq!(
            fire(&mut t, DataChanged, "/a"),
            vec![(1, event::NODE_DATA_CHANGED)]
        );
        assert!(fire(&mut t, DataChanged, "/a").is_empty());
        assert_eq!(t.count(), 0);
    }

    #[test]
    fn delete_sends_one_event_per_connection() {
        let mut t = WatchTable::new();
        t.add_data("/a", 1);
        t.add_child("/a", 1);
        t.add_child("/a", 2);
        assert_eq!(
            fire(&mut t, Deleted, "/a"),
            vec![(1, event::NODE_DELETED), (2, event::NODE_DELETED)]
        );
        assert_eq!(t.count(), 0, "the suppressed child watch is consumed too");
    }

    #[test]
    fn recursive_watches_skip_child_events() {
        let mut t = WatchTable::new();
        t.add_persistent("/a", 9, true);
        assert_eq!(
            fire(&mut t, Created, "/a/b/c"),
            vec![(9, event::NODE_CREATED)]
        );
        assert!(fire(&mut t, ChildrenChanged, "/a/b").is_empty());
        assert!(fire(&mut t, Created, "/ab").is_empty());
        assert_eq!(
            fire(&mut t, DataChanged, "/a"),
            vec![(9, event::NODE_DATA_CHANGED)]
        );
        assert!(t.contains("/a", 9, WatcherType::PersistentRecursive));
    }

    #[test]
    fn persistent_watches_stay_and_see_children() {
        let mut t = WatchTable::new();
        t.add_persistent("/a", 3, false);
        assert_eq!(
            fire(&mut t, ChildrenChanged, "/a"),
            vec![(3, event::NODE_CHILDREN_CHANGED)]
        );
        assert_eq!(
            fire(&mut t, DataChanged, "/a"),
            vec![(3, event::NODE_DATA_CHANGED)]
        );
        assert!(fire(&mut t, DataChanged, "/a/b").is_empty());
        assert!(
            !t.remove("/a", 3, WatcherType::Data),
            "no standard data watch"
        );
        assert!(t.remove("/a", 3, WatcherType::Persistent));
        assert!(!t.remove("/a", 3, WatcherType::Any));
    }

    #[test]
    fn modes_coexist() {
        let mut t = WatchTable::new();
        t.add_persistent("/a", 4, false);
        t.add_data("/a", 4);
        assert_eq!(
            fire(&mut t, DataChanged, "/a"),
            vec![(4, event::NODE_DATA_CHANGED)]
        );
        assert_eq!(
            fire(&mut t, DataChanged, "/a"),
            vec![(4, event::NODE_DATA_CHANGED)],
            "persistent survives"
        );
        assert!(!t.contains("/a", 4, WatcherType::Data));
    }

    #[test]
    fn dropping_a_connection_forgets_its_watches() {
        let mut t = WatchTable::new();
        t.add_persistent("/", 1, true);
        t.add_data("/x", 1);
        t.add_data("/x", 2);
        t.drop_conn(1);
        assert_eq!(fire(&mut t, Created, "/x"), vec![(2, event::NODE_CREATED)]);
    }
}
