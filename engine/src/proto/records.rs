//! The records of the client protocol (`zookeeper.jute`): what each request carries and how each
//! response is laid out. Requests are decoded into [`Request`]; responses are encoded from
//! [`Response`]. Field order is the wire order.

use super::jute::{DecodeError, Reader, Writer};
use super::opcode as op;
use super::ErrorCode;
use bytes::{BufMut, Bytes};

/// Znode data as ZooKeeper keeps it: `None` is null (a buffer of length -1 on the wire), which
/// ZooKeeper stores and returns apart from empty data.
pub type Data = Option<Bytes>;

/// Bytes of data, as Stat's `dataLength` counts them (null counts 0).
pub fn data_len(data: &Data) -> usize {
    data.as_ref().map_or(0, |d| d.len())
}

/// A znode's metadata, in wire order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stat {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub data_length: i32,
    pub num_children: i32,
    pub pzxid: i64,
}

impl Stat {
    pub fn encode<B: BufMut>(&self, w: &mut Writer<B>) {
        w.long(self.czxid)
            .long(self.mzxid)
            .long(self.ctime)
            .long(self.mtime);
        w.int(self.version).int(self.cversion).int(self.aversion);
        w.long(self.ephemeral_owner)
            .int(self.data_length)
            .int(self.num_children)
            .long(self.pzxid);
    }

    pub fn decode(r: &mut Reader) -> Result<Stat, DecodeError> {
        Ok(Stat {
            czxid: r.long("czxid")?,
            mzxid: r.long("mzxid")?,
            ctime: r.long("ctime")?,
            mtime: r.long("mtime")?,
            version: r.int("version")?,
            cversion: r.int("cversion")?,
            aversion: r.int("aversion")?,
            ephemeral_owner: r.long("ephemeralOwner")?,
            data_length: r.int("dataLength")?,
            num_children: r.int("numChildren")?,
            pzxid: r.long("pzxid")?,
        })
    }
}

/// An identity: `scheme:id`, e.g. `world:anyone`, `digest:user:hash`, `ip:10.0.0.0/8`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id {
    pub scheme: String,
    pub id: String,
}

impl Id {
    pub fn new(scheme: &str, id: &str) -> Id {
        Id {
            scheme: scheme.to_string(),
            id: id.to_string(),
        }
    }
}

/// One access control entry: a permission mask granted to an identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Acl {
    pub perms: i32,
    pub id: Id,
}

pub mod perms {
    pub const READ: i32 = 1;
    pub const WRITE: i32 = 2;
    pub const CREATE: i32 = 4;
    pub const DELETE: i32 = 8;
    pub const ADMIN: i32 = 16;
    pub const ALL: i32 = 31;
}

impl Acl {
    pub fn new(perms: i32, scheme: &str, id: &str) -> Acl {
        Acl {
            perms,
            id: Id::new(scheme, id),
        }
    }

    /// `world:anyone` with every permission: ZooKeeper's OPEN_ACL_UNSAFE.
    pub fn open_unsafe() -> Vec<Acl> {
        vec![Acl::new(perms::ALL, "world", "anyone")]
    }

    /// `world:anyone` read only: ZooKeeper's READ_ACL_UNSAFE.
    pub fn read_unsafe() -> Vec<Acl> {
        vec![Acl::new(perms::READ, "world", "anyone")]
    }

    fn encode<B: BufMut>(&self, w: &mut Writer<B>) {
        w.int(self.perms)
            .ustring(&self.id.scheme)
            .ustring(&self.id.id);
    }

    fn decode(r: &mut Reader) -> Result<Acl, DecodeError> {
        Ok(Acl {
            perms: r.int("perms")?,
            id: Id {
                scheme: r.ustring("scheme")?,
                id: r.ustring("id")?,
            },
        })
    }
}

pub fn encode_acls<B: BufMut>(w: &mut Writer<B>, acl: &[Acl]) {
    w.vector(acl, |w, a| a.encode(w));
}

fn decode_acls(r: &mut Reader) -> Result<Vec<Acl>, DecodeError> {
    r.vector("acl", 12, Acl::decode)
}

/// The first packet of a connection. `read_only` is `None` when the client sent no trailing byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Bytes,
    pub read_only: Option<bool>,
}

impl ConnectRequest {
    pub fn decode(body: &[u8]) -> Result<ConnectRequest, DecodeError> {
        let mut r = Reader::new(body);
        let mut req = ConnectRequest {
            protocol_version: r.int("protocolVersion")?,
            last_zxid_seen: r.long("lastZxidSeen")?,
            timeout_ms: r.int("timeOut")?,
            session_id: r.long("sessionId")?,
            passwd: r.buffer("passwd")?,
            read_only: None,
        };
        if r.remaining() > 0 {
            req.read_only = Some(r.boolean("readOnly")?);
        }
        Ok(req)
    }

    pub fn encode<B: BufMut>(&self, buf: &mut B) {
        let mut w = Writer::new(buf);
        w.int(self.protocol_version)
            .long(self.last_zxid_seen)
            .int(self.timeout_ms);
        w.long(self.session_id).buffer(&self.passwd);
        if let Some(ro) = self.read_only {
            w.boolean(ro);
        }
    }
}

/// The server's answer to a connect; `read_only` mirrors whether the request carried the byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Bytes,
    pub read_only: Option<bool>,
}

impl ConnectResponse {
    pub fn encode<B: BufMut>(&self, buf: &mut B) {
        let mut w = Writer::new(buf);
        w.int(self.protocol_version)
            .int(self.timeout_ms)
            .long(self.session_id)
            .buffer(&self.passwd);
        if let Some(ro) = self.read_only {
            w.boolean(ro);
        }
    }

    pub fn decode(body: &[u8]) -> Result<ConnectResponse, DecodeError> {
        let mut r = Reader::new(body);
        let mut resp = ConnectResponse {
            protocol_version: r.int("protocolVersion")?,
            timeout_ms: r.int("timeOut")?,
            session_id: r.long("sessionId")?,
            passwd: r.buffer("passwd")?,
            read_only: None,
        };
        if r.remaining() > 0 {
            resp.read_only = Some(r.boolean("readOnly")?);
        }
        Ok(resp)
    }
}

/// Header of every request after connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    pub xid: i32,
    pub opcode: i32,
}

/// Header of every reply and notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyHeader {
    pub xid: i32,
    pub zxid: i64,
    pub err: ErrorCode,
}

impl ReplyHeader {
    pub fn encode<B: BufMut>(&self, w: &mut Writer<B>) {
        w.int(self.xid).long(self.zxid).int(self.err.code());
    }
}

/// What a create asks for; one type for create, create2, createContainer and createTTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    pub opcode: i32,
    pub path: String,
    pub data: Data,
    pub acl: Vec<Acl>,
    pub flags: i32,
    pub ttl: i64,
}

/// Watch kinds re-registered by setWatches / setWatches2.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetWatches {
    pub relative_zxid: i64,
    pub data: Vec<String>,
    pub exist: Vec<String>,
    pub child: Vec<String>,
    pub persistent: Vec<String>,
    pub persistent_recursive: Vec<String>,
}

/// A decoded client request (everything after the request header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Create(CreateRequest),
    Delete {
        path: String,
        version: i32,
    },
    Exists {
        path: String,
        watch: bool,
    },
    GetData {
        path: String,
        watch: bool,
    },
    SetData {
        path: String,
        data: Data,
        version: i32,
    },
    GetAcl {
        path: String,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    GetChildren {
        path: String,
        watch: bool,
    },
    GetChildren2 {
        path: String,
        watch: bool,
    },
    Sync {
        path: String,
    },
    Ping,
    Check {
        path: String,
        version: i32,
    },
    Multi(Vec<Request>),
    MultiRead(Vec<Request>),
    SetWatches(SetWatches),
    AddWatch {
        path: String,
        mode: i32,
    },
    RemoveWatches {
        path: String,
        kind: i32,
    },
    CheckWatches {
        path: String,
        kind: i32,
    },
    GetEphemerals {
        prefix: String,
    },
    GetAllChildrenNumber {
        path: String,
    },
    WhoAmI,
    Auth {
        kind: i32,
        scheme: String,
        auth: Bytes,
    },
    CloseSession,
    /// A new session, as a learner forwards it to the leader (ZooKeeper's `createSession`
    /// request: its body is the negotiated timeout). Clients never send it: [`Request::decode`]
    /// never produces it.
    CreateSession {
        timeout_ms: i32,
    },
    /// An opcode this server does not implement; answered with ZUNIMPLEMENTED.
    Unknown(i32),
}

impl Request {
    /// Decodes the body of a request whose header named `opcode`.
    pub fn decode(opcode: i32, body: &[u8]) -> Result<Request, DecodeError> {
        let mut r = Reader::new(body);
        Self::decode_op(opcode, &mut r)
    }

    fn decode_op(opcode: i32, r: &mut Reader) -> Result<Request, DecodeError> {
        Ok(match opcode {
            op::CREATE | op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
                let path = r.ustring("path")?;
                let data = r.buffer_opt("data")?;
                let acl = decode_acls(r)?;
                let flags = r.int("flags")?;
                let ttl = if opcode == op::CREATE_TTL {
                    r.long("ttl")?
                } else {
                    -1
                };
                Request::Create(CreateRequest {
                    opcode,
                    path,
                    data,
                    acl,
                    flags,
                    ttl,
                })
            }
            op::DELETE => Request::Delete {
                path: r.ustring("path")?,
                version: r.int("version")?,
            },
            op::EXISTS => Request::Exists {
                path: r.ustring("path")?,
                watch: r.boolean("watch")?,
            },
            op::GET_DATA => Request::GetData {
                path: r.ustring("path")?,
                watch: r.boolean("watch")?,
            },
            op::SET_DATA => Request::SetData {
                path: r.ustring("path")?,
                data: r.buffer_opt("data")?,
                version: r.int("version")?,
            },
            op::GET_ACL => Request::GetAcl {
                path: r.ustring("path")?,
            },
            op::SET_ACL => Request::SetAcl {
                path: r.ustring("path")?,
                acl: decode_acls(r)?,
                version: r.int("version")?,
            },
            op::GET_CHILDREN => Request::GetChildren {
                path: r.ustring("path")?,
                watch: r.boolean("watch")?,
            },
            op::GET_CHILDREN2 => Request::GetChildren2 {
                path: r.ustring("path")?,
                watch: r.boolean("watch")?,
            },
            op::SYNC => Request::Sync {
                path: r.ustring("path")?,
            },
            op::PING => Request::Ping,
            op::CHECK => Request::Check {
                path: r.ustring("path")?,
                version: r.int("version")?,
            },
            op::MULTI => Request::Multi(decode_multi(r)?),
            op::MULTI_READ => Request::MultiRead(decode_multi(r)?),
            op::SET_WATCHES | op::SET_WATCHES2 => {
                let relative_zxid = r.long("relativeZxid")?;
                let mut sw = SetWatches {
                    relative_zxid,
                    data: r.vector("dataWatches", 4, |r| r.ustring("path"))?,
                    exist: r.vector("existWatches", 4, |r| r.ustring("path"))?,
                    child: r.vector("childWatches", 4, |r| r.ustring("path"))?,
                    ..SetWatches::default()
                };
                if opcode == op::SET_WATCHES2 {
                    sw.persistent = r.vector("persistentWatches", 4, |r| r.ustring("path"))?;
                    sw.persistent_recursive =
                        r.vector("persistentRecursiveWatches", 4, |r| r.ustring("path"))?;
                }
                Request::SetWatches(sw)
            }
            op::ADD_WATCH => Request::AddWatch {
                path: r.ustring("path")?,
                mode: r.int("mode")?,
            },
            op::REMOVE_WATCHES => Request::RemoveWatches {
                path: r.ustring("path")?,
                kind: r.int("type")?,
            },
            op::CHECK_WATCHES => Request::CheckWatches {
                path: r.ustring("path")?,
                kind: r.int("type")?,
            },
            op::GET_EPHEMERALS => Request::GetEphemerals {
                prefix: r.ustring("prefixPath")?,
            },
            op::GET_ALL_CHILDREN_NUMBER => Request::GetAllChildrenNumber {
                path: r.ustring("path")?,
            },
            op::WHO_AM_I => Request::WhoAmI,
            op::AUTH => Request::Auth {
                kind: r.int("type")?,
                scheme: r.ustring("scheme")?,
                auth: r.buffer("auth")?,
            },
            op::CLOSE_SESSION => Request::CloseSession,
            other => Request::Unknown(other),
        })
    }

    /// True for requests that change state and so go through prep and the log.
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Request::Create(_)
                | Request::Delete { .. }
                | Request::SetData { .. }
                | Request::SetAcl { .. }
                | Request::Check { .. }
                | Request::Multi(_)
                | Request::CloseSession
                | Request::CreateSession { .. }
        )
    }

    /// The path a request names, if any (for logs and `cons`).
    pub fn path(&self) -> Option<&str> {
        match self {
            Request::Create(c) => Some(&c.path),
            Request::Delete { path, .. }
            | Request::Exists { path, .. }
            | Request::GetData { path, .. }
            | Request::SetData { path, .. }
            | Request::GetAcl { path }
            | Request::SetAcl { path, .. }
            | Request::GetChildren { path, .. }
            | Request::GetChildren2 { path, .. }
            | Request::Sync { path }
            | Request::Check { path, .. }
            | Request::AddWatch { path, .. }
            | Request::RemoveWatches { path, .. }
            | Request::CheckWatches { path, .. }
            | Request::GetAllChildrenNumber { path } => Some(path),
            Request::GetEphemerals { prefix } => Some(prefix),
            _ => None,
        }
    }
}

impl Request {
    /// The opcode this request is sent with.
    pub fn opcode(&self) -> i32 {
        match self {
            Request::Create(c) => c.opcode,
            Request::Delete { .. } => op::DELETE,
            Request::Exists { .. } => op::EXISTS,
            Request::GetData { .. } => op::GET_DATA,
            Request::SetData { .. } => op::SET_DATA,
            Request::GetAcl { .. } => op::GET_ACL,
            Request::SetAcl { .. } => op::SET_ACL,
            Request::GetChildren { .. } => op::GET_CHILDREN,
            Request::GetChildren2 { .. } => op::GET_CHILDREN2,
            Request::Sync { .. } => op::SYNC,
            Request::Ping => op::PING,
            Request::Check { .. } => op::CHECK,
            Request::Multi(_) => op::MULTI,
            Request::MultiRead(_) => op::MULTI_READ,
            Request::SetWatches(sw) => {
                if sw.persistent.is_empty() && sw.persistent_recursive.is_empty() {
                    op::SET_WATCHES
                } else {
                    op::SET_WATCHES2
                }
            }
            Request::AddWatch { .. } => op::ADD_WATCH,
            Request::RemoveWatches { .. } => op::REMOVE_WATCHES,
            Request::CheckWatches { .. } => op::CHECK_WATCHES,
            Request::GetEphemerals { .. } => op::GET_EPHEMERALS,
            Request::GetAllChildrenNumber { .. } => op::GET_ALL_CHILDREN_NUMBER,
            Request::WhoAmI => op::WHO_AM_I,
            Request::Auth { .. } => op::AUTH,
            Request::CloseSession => op::CLOSE_SESSION,
            Request::CreateSession { .. } => op::CREATE_SESSION,
            Request::Unknown(code) => *code,
        }
    }

    /// Encodes the record body (what follows the request header), as a client sends it.
    pub fn encode<B: BufMut>(&self, w: &mut Writer<B>) {
        let strs = |w: &mut Writer<B>, v: &[String]| {
            w.vector(v, |w, p| {
                w.ustring(p);
            });
        };
        match self {
            Request::Create(c) => {
                w.ustring(&c.path).buffer_opt(c.data.as_deref());
                encode_acls(w, &c.acl);
                w.int(c.flags);
                if c.opcode == op::CREATE_TTL {
                    w.long(c.ttl);
                }
            }
            Request::Delete { path, version } | Request::Check { path, version } => {
                w.ustring(path).int(*version);
            }
            Request::Exists { path, watch }
            | Request::GetData { path, watch }
            | Request::GetChildren { path, watch }
            | Request::GetChildren2 { path, watch } => {
                w.ustring(path).boolean(*watch);
            }
            Request::SetData {
                path,
                data,
                version,
            } => {
                w.ustring(path).buffer_opt(data.as_deref()).int(*version);
            }
            Request::GetAcl { path }
            | Request::Sync { path }
            | Request::GetAllChildrenNumber { path } => {
                w.ustring(path);
            }
            Request::GetEphemerals { prefix } => {
                w.ustring(prefix);
            }
            Request::SetAcl { path, acl, version } => {
                w.ustring(path);
                encode_acls(w, acl);
                w.int(*version);
            }
            Request::Multi(ops) | Request::MultiRead(ops) => {
                for sub in ops {
                    w.int(sub.opcode()).boolean(false).int(-1);
                    sub.encode(w);
                }
                w.int(-1).boolean(true).int(-1);
            }
            Request::SetWatches(sw) => {
                w.long(sw.relative_zxid);
                strs(w, &sw.data);
                strs(w, &sw.exist);
                strs(w, &sw.child);
                if self.opcode() == op::SET_WATCHES2 {
                    strs(w, &sw.persistent);
                    strs(w, &sw.persistent_recursive);
                }
            }
            Request::AddWatch { path, mode } => {
                w.ustring(path).int(*mode);
            }
            Request::RemoveWatches { path, kind } | Request::CheckWatches { path, kind } => {
                w.ustring(path).int(*kind);
            }
            Request::Auth { kind, scheme, auth } => {
                w.int(*kind).ustring(scheme).buffer(auth);
            }
            Request::CreateSession { timeout_ms } => {
                w.int(*timeout_ms);
            }
            Request::Ping | Request::WhoAmI | Request::CloseSession | Request::Unknown(_) => {}
        }
    }
}

fn decode_multi(r: &mut Reader) -> Result<Vec<Request>, DecodeError> {
    let mut ops = Vec::new();
    loop {
        let opcode = r.int("multiHeader.type")?;
        let done = r.boolean("multiHeader.done")?;
        let _err = r.int("multiHeader.err")?;
        if done {
            return Ok(ops);
        }
        let sub = match opcode {
            op::CREATE
            | op::CREATE2
            | op::CREATE_CONTAINER
            | op::CREATE_TTL
            | op::DELETE
            | op::SET_DATA
            | op::CHECK
            | op::GET_DATA
            | op::GET_CHILDREN => Request::decode_op(opcode, r)?,
            other => {
                return Err(DecodeError::BadValue {
                    field: "multiHeader.type",
                    value: other as i64,
                })
            }
        };
        ops.push(sub);
    }
}

/// One entry of a multi or multiRead response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiResult {
    /// `create`: the created path. `create2`/TTL/container results carry a stat too.
    Create {
        path: String,
        stat: Option<Stat>,
    },
    Delete,
    SetData(Stat),
    Check,
    GetData {
        data: Data,
        stat: Stat,
    },
    GetChildren(Vec<String>),
    Error(ErrorCode),
}

impl MultiResult {
    fn opcode(&self) -> i32 {
        match self {
            MultiResult::Create { stat: None, .. } => op::CREATE,
            MultiResult::Create { stat: Some(_), .. } => op::CREATE2,
            MultiResult::Delete => op::DELETE,
            MultiResult::SetData(_) => op::SET_DATA,
            MultiResult::Check => op::CHECK,
            MultiResult::GetData { .. } => op::GET_DATA,
            MultiResult::GetChildren(_) => op::GET_CHILDREN,
            MultiResult::Error(_) => op::ERROR,
        }
    }
}

/// A response body (the part after the reply header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Header only: delete, ping, auth, setWatches, addWatch, removeWatches, closeSession, errors.
    Empty,
    Create {
        path: String,
    },
    Create2 {
        path: String,
        stat: Stat,
    },
    /// exists, setData, setACL.
    Stat(Stat),
    GetData {
        data: Data,
        stat: Stat,
    },
    GetAcl {
        acl: Vec<Acl>,
        stat: Stat,
    },
    Children(Vec<String>),
    Children2 {
        children: Vec<String>,
        stat: Stat,
    },
    Sync {
        path: String,
    },
    Multi(Vec<MultiResult>),
    Ephemerals(Vec<String>),
    /// A single int: getAllChildrenNumber's count, or addWatch's `ErrorResponse(0)`.
    Int(i32),
    /// whoAmI: (scheme, user) pairs.
    WhoAmI(Vec<(String, String)>),
}

impl Response {
    pub fn encode<B: BufMut>(&self, w: &mut Writer<B>) {
        match self {
            Response::Empty => {}
            Response::Create { path } | Response::Sync { path } => {
                w.ustring(path);
            }
            Response::Create2 { path, stat } => {
                w.ustring(path);
                stat.encode(w);
            }
            Response::Stat(stat) => stat.encode(w),
            Response::GetData { data, stat } => {
                w.buffer_opt(data.as_deref());
                stat.encode(w);
            }
            Response::GetAcl { acl, stat } => {
                encode_acls(w, acl);
                stat.encode(w);
            }
            Response::Children(children) | Response::Ephemerals(children) => {
                w.vector(children, |w, c| {
                    w.ustring(c);
                });
            }
            Response::Children2 { children, stat } => {
                w.vector(children, |w, c| {
                    w.ustring(c);
                });
                stat.encode(w);
            }
            Response::Multi(results) => encode_multi(w, results),
            Response::Int(n) => {
                w.int(*n);
            }
            Response::WhoAmI(ids) => {
                w.vector(ids, |w, (scheme, user)| {
                    w.ustring(scheme).ustring(user);
                });
            }
        }
    }
}

impl Response {
    /// Decodes the body of a successful reply to a request with `opcode`, as a client reads
    /// it. Multi replies are not decoded here.
    pub fn decode(opcode: i32, body: &[u8]) -> Result<Response, DecodeError> {
        let mut r = Reader::new(body);
        let strings = |r: &mut Reader, field| r.vector(field, 4, |r| r.ustring(field));
        let response = match opcode {
            op::CREATE => Response::Create {
                path: r.ustring("path")?,
            },
            op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => Response::Create2 {
                path: r.ustring("path")?,
                stat: Stat::decode(&mut r)?,
            },
            op::EXISTS | op::SET_DATA | op::SET_ACL => Response::Stat(Stat::decode(&mut r)?),
            op::GET_DATA => Response::GetData {
                data: r.buffer_opt("data")?,
                stat: Stat::decode(&mut r)?,
            },
            op::GET_ACL => Response::GetAcl {
                acl: decode_acls(&mut r)?,
                stat: Stat::decode(&mut r)?,
            },
            op::GET_CHILDREN => Response::Children(strings(&mut r, "children")?),
            op::GET_CHILDREN2 => Response::Children2 {
                children: strings(&mut r, "children")?,
                stat: Stat::decode(&mut r)?,
            },
            op::SYNC => Response::Sync {
                path: r.ustring("path")?,
            },
            op::GET_EPHEMERALS => Response::Ephemerals(strings(&mut r, "ephemerals")?),
            op::GET_ALL_CHILDREN_NUMBER | op::ADD_WATCH => Response::Int(r.int("number")?),
            op::WHO_AM_I => Response::WhoAmI(r.vector("clientInfo", 8, |r| {
                Ok((r.ustring("authScheme")?, r.ustring("user")?))
            })?),
            _ => Response::Empty,
        };
        Ok(response)
    }
}

fn encode_multi<B: BufMut>(w: &mut Writer<B>, results: &[MultiResult]) {
    for result in results {
        let err = match result {
            MultiResult::Error(code) => code.code(),
            _ => 0,
        };
        w.int(result.opcode()).boolean(false).int(err);
        match result {
            MultiResult::Create { path, stat } => {
                w.ustring(path);
                if let Some(stat) = stat {
                    stat.encode(w);
                }
            }
            MultiResult::Delete | MultiResult::Check => {}
            MultiResult::SetData(stat) => stat.encode(w),
            MultiResult::GetData { data, stat } => {
                w.buffer_opt(data.as_deref());
                stat.encode(w);
            }
            MultiResult::GetChildren(children) => {
                w.vector(children, |w, c| {
                    w.ustring(c);
                });
            }
            MultiResult::Error(code) => {
                w.int(code.code());
            }
        }
    }
    w.int(-1).boolean(true).int(-1);
}

/// A watch notification body (`WatcherEvent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatcherEvent {
    pub event_type: i32,
    pub state: i32,
    pub path: String,
}

pub mod event {
    pub const NONE: i32 = -1;
    pub const NODE_CREATED: i32 = 1;
    pub const NODE_DELETED: i32 = 2;
    pub const NODE_DATA_CHANGED: i32 = 3;
    pub const NODE_CHILDREN_CHANGED: i32 = 4;
    pub const STATE_SYNC_CONNECTED: i32 = 3;
}

/// Encodes a complete reply frame (length prefix, header, body) into `out`.
pub fn encode_reply(out: &mut Vec<u8>, header: ReplyHeader, body: &Response) {
    let start = out.len();
    out.put_i32(0);
    {
        let mut w = Writer::new(out);
        header.encode(&mut w);
        if header.err == ErrorCode::Ok || matches!(body, Response::Multi(_)) {
            body.encode(&mut w);
        }
    }
    let len = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// Encodes a complete notification frame (xid -1) carrying the zxid of the change.
pub fn encode_notification(out: &mut Vec<u8>, zxid: i64, event_type: i32, path: &str) {
    let start = out.len();
    out.put_i32(0);
    {
        let mut w = Writer::new(out);
        ReplyHeader {
            xid: op::XID_NOTIFICATION,
            zxid,
            err: ErrorCode::Ok,
        }
        .encode(&mut w);
        w.int(event_type)
            .int(event::STATE_SYNC_CONNECTED)
            .ustring(path);
    }
    let len = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_decode_as_they_were_encoded() {
        let stat = Stat {
            czxid: 1,
            mzxid: 2,
            ctime: 3,
            mtime: 4,
            version: 5,
            cversion: 6,
            aversion: 7,
            ephemeral_owner: 8,
            data_length: 9,
            num_children: 10,
            pzxid: 11,
        };
        let cases = [
            (op::CREATE, Response::Create { path: "/a".into() }),
            (
                op::CREATE_TTL,
                Response::Create2 {
                    path: "/t".into(),
                    stat,
                },
            ),
            (op::SET_DATA, Response::Stat(stat)),
            (op::GET_DATA, Response::GetData { data: None, stat }),
            (
                op::GET_DATA,
                Response::GetData {
                    data: Some(Bytes::from_static(b"x")),
                    stat,
                },
            ),
            (
                op::GET_ACL,
                Response::GetAcl {
                    acl: Acl::open_unsafe(),
                    stat,
                },
            ),
            (
                op::GET_CHILDREN,
                Response::Children(vec!["a".into(), "b".into()]),
            ),
            (
                op::GET_CHILDREN2,
                Response::Children2 {
                    children: vec![],
                    stat,
                },
            ),
            (op::SYNC, Response::Sync { path: "/".into() }),
            (op::GET_EPHEMERALS, Response::Ephemerals(vec!["/e".into()])),
            (op::GET_ALL_CHILDREN_NUMBER, Response::Int(42)),
            (
                op::WHO_AM_I,
                Response::WhoAmI(vec![("ip".into(), "127.0.0.1".into())]),
            ),
            (op::DELETE, Response::Empty),
        ];
        for (opcode, response) in cases {
            let mut body = Vec::new();
            response.encode(&mut Writer::new(&mut body));
            assert_eq!(
                Response::decode(opcode, &body).unwrap(),
                response,
                "opcode {opcode}"
            );
        }
        assert!(
            Response::decode(op::GET_DATA, &[0, 0]).is_err(),
            "a short body is an error"
        );
    }

    fn encode_create(opcode: i32, path: &str, ttl: Option<i64>) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = Writer::new(&mut out);
        w.ustring(path).buffer(b"v");
        encode_acls(&mut w, &Acl::open_unsafe());
        w.int(0);
        if let Some(ttl) = ttl {
            w.long(ttl);
        }
        let _ = opcode;
        out
    }

    #[test]
    fn null_data_is_kept_apart_from_empty_in_both_directions() {
        let mut body = Vec::new();
        Writer::new(&mut body).ustring("/n").null().int(-1);
        assert_eq!(
            Request::decode(op::SET_DATA, &body).unwrap(),
            Request::SetData {
                path: "/n".into(),
                data: None,
                version: -1
            }
        );
        let encode = |data: Data| {
            let mut out = Vec::new();
            Response::GetData {
                data,
                stat: Stat::default(),
            }
            .encode(&mut Writer::new(&mut out));
            out
        };
        assert_eq!(encode(None)[..4], (-1i32).to_be_bytes());
        assert_eq!(encode(Some(Bytes::new()))[..4], 0i32.to_be_bytes());
    }

    #[test]
    fn create_and_create_ttl_decode() {
        let body = encode_create(op::CREATE, "/a", None);
        let Request::Create(c) = Request::decode(op::CREATE, &body).unwrap() else {
            panic!()
        };
        assert_eq!(
            (c.path.as_str(), c.data.as_deref(), c.acl.len(), c.ttl),
            ("/a", Some(&b"v"[..]), 1, -1)
        );
        let body = encode_create(op::CREATE_TTL, "/t", Some(500));
        let Request::Create(c) = Request::decode(op::CREATE_TTL, &body).unwrap() else {
            panic!()
        };
        assert_eq!(c.ttl, 500);
    }

    #[test]
    fn connect_keeps_the_read_only_byte_form() {
        let mut with = Vec::new();
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 5,
            timeout_ms: 30000,
            session_id: 0,
            passwd: Bytes::from_static(&[0; 16]),
            read_only: Some(false),
        };
        req.encode(&mut with);
        assert_eq!(ConnectRequest::decode(&with).unwrap(), req);
        let mut without = Vec::new();
        ConnectRequest {
            read_only: None,
            ..req.clone()
        }
        .encode(&mut without);
        assert_eq!(without.len() + 1, with.len());
        assert_eq!(ConnectRequest::decode(&without).unwrap().read_only, None);
    }

    #[test]
    fn multi_response_layout() {
        let mut out = Vec::new();
        encode_multi(
            &mut Writer::new(&mut out),
            &[
                MultiResult::Error(ErrorCode::Ok),
                MultiResult::Error(ErrorCode::NoNode),
            ],
        );
        let mut r = Reader::new(&out);
        assert_eq!(
            (
                r.int("t").unwrap(),
                r.boolean("d").unwrap(),
                r.int("e").unwrap()
            ),
            (-1, false, 0)
        );
        assert_eq!(r.int("err").unwrap(), 0);
        assert_eq!(
            (
                r.int("t").unwrap(),
                r.boolean("d").unwrap(),
                r.int("e").unwrap()
            ),
            (-1, false, -101)
        );
        assert_eq!(r.int("err").unwrap(), -101);
        assert_eq!(
            (
                r.int("t").unwrap(),
                r.boolean("d").unwrap(),
                r.int("e").unwrap()
            ),
            (-1, true, -1)
        );
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn multi_rejects_foreign_ops() {
        let mut out = Vec::new();
        Writer::new(&mut out)
            .int(op::SYNC)
            .boolean(false)
            .int(-1)
            .ustring("/");
        assert!(matches!(
            Request::decode(op::MULTI, &out),
            Err(DecodeError::BadValue { .. })
        ));
    }

    #[test]
    fn every_request_survives_encode_then_decode() {
        let acl = Acl::open_unsafe();
        let create = |opcode, ttl| {
            Request::Create(CreateRequest {
                opcode,
                path: "/a".into(),
                data: (opcode != op::CREATE2).then(|| Bytes::from_static(b"d")),
                acl: acl.clone(),
                flags: 0,
                ttl,
            })
        };
        let all = vec![
            create(op::CREATE, -1),
            create(op::CREATE2, -1),
            create(op::CREATE_CONTAINER, -1),
            create(op::CREATE_TTL, 60_000),
            Request::Delete {
                path: "/a".into(),
                version: 3,
            },
            Request::Exists {
                path: "/a".into(),
                watch: true,
            },
            Request::GetData {
                path: "/a".into(),
                watch: false,
            },
            Request::SetData {
                path: "/a".into(),
                data: Some(Bytes::from_static(b"x")),
                version: -1,
            },
            Request::SetData {
                path: "/a".into(),
                data: None,
                version: 2,
            },
            Request::GetAcl { path: "/a".into() },
            Request::SetAcl {
                path: "/a".into(),
                acl: acl.clone(),
                version: 0,
            },
            Request::GetChildren {
                path: "/".into(),
                watch: true,
            },
            Request::GetChildren2 {
                path: "/".into(),
                watch: false,
            },
            Request::Sync { path: "/".into() },
            Request::Ping,
            Request::Check {
                path: "/a".into(),
                version: 1,
            },
            Request::Multi(vec![
                create(op::CREATE, -1),
                Request::Check {
                    path: "/a".into(),
                    version: 0,
                },
            ]),
            Request::MultiRead(vec![Request::GetData {
                path: "/a".into(),
                watch: false,
            }]),
            Request::SetWatches(SetWatches {
                relative_zxid: 9,
                data: vec!["/d".into()],
                ..SetWatches::default()
            }),
            Request::SetWatches(SetWatches {
                relative_zxid: 9,
                persistent_recursive: vec!["/r".into()],
                ..SetWatches::default()
            }),
            Request::AddWatch {
                path: "/a".into(),
                mode: 1,
            },
            Request::RemoveWatches {
                path: "/a".into(),
                kind: 3,
            },
            Request::CheckWatches {
                path: "/a".into(),
                kind: 2,
            },
            Request::GetEphemerals { prefix: "/".into() },
            Request::GetAllChildrenNumber { path: "/".into() },
            Request::WhoAmI,
            Request::Auth {
                kind: 0,
                scheme: "digest".into(),
                auth: Bytes::from_static(b"u:p"),
            },
            Request::CloseSession,
        ];
        for req in all {
            let mut body = Vec::new();
            req.encode(&mut Writer::new(&mut body));
            assert_eq!(
                Request::decode(req.opcode(), &body).unwrap(),
                req,
                "{req:?}"
            );
        }
    }

    #[test]
    fn unknown_opcode_is_kept() {
        assert_eq!(Request::decode(9999, &[]).unwrap(), Request::Unknown(9999));
    }
}
