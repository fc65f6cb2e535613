//! Turns a committed write's [`Outcome`] into the reply ZooKeeper would send.

use crate::proto::{opcode as op, ErrorCode, MultiResult, Response};
use crate::tree::Outcome;

/// (reply error code, body) for a write with request opcode `opcode`.
pub fn write_reply(opcode: i32, outcome: &Outcome) -> (ErrorCode, Response) {
    match outcome {
        Outcome::Error(code) => (*code, Response::Empty),
        Outcome::Created { path, stat, .. } => {
            if opcode == op::CREATE {
                (ErrorCode::Ok, Response::Create { path: path.clone() })
            } else {
                (
                    ErrorCode::Ok,
                    Response::Create2 {
                        path: path.clone(),
                        stat: *stat,
                    },
                )
            }
        }
        Outcome::Deleted | Outcome::Checked | Outcome::SessionCreated | Outcome::SessionClosed => {
            (ErrorCode::Ok, Response::Empty)
        }
        Outcome::DataSet(stat) | Outcome::AclSet(stat) => (ErrorCode::Ok, Response::Stat(*stat)),
        Outcome::Multi(subs) => (
            ErrorCode::Ok,
            Response::Multi(subs.iter().map(multi_result).collect()),
        ),
    }
}

fn multi_result(outcome: &Outcome) -> MultiResult {
    match outcome {
        Outcome::Created { path, stat, opcode } => {
            let stat = if *opcode == op::CREATE {
                None
            } else {
                Some(*stat)
            };
            MultiResult::Create {
                path: path.clone(),
                stat,
            }
        }
        Outcome::Deleted => MultiResult::Delete,
        Outcome::DataSet(stat) => MultiResult::SetData(*stat),
        Outcome::Checked => MultiResult::Check,
        Outcome::Error(code) => MultiResult::Error(*code),
        other => panic!("not a multi sub-outcome: {other:?}"),
    }
}
