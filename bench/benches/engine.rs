//! Micro-benchmarks of the engine: jute decode of a create, reply encode, and tree apply.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use ringkeeper_engine::proto::{encode_acls, opcode as op, Acl, Request, Writer};
use ringkeeper_engine::tree::DataTree;
use ringkeeper_engine::txn::{Txn, TxnOp};
use std::sync::Arc;

fn codec(c: &mut Criterion) {
    let mut body = Vec::new();
    let mut w = Writer::new(&mut body);
    w.ustring("/bench/node-0000000001").buffer(&[7u8; 100]);
    encode_acls(&mut w, &Acl::open_unsafe());
    w.int(0);
    c.bench_function("decode_create_100B", |b| {
        b.iter(|| Request::decode(op::CREATE, std::hint::black_box(&body)).unwrap())
    });
}

fn apply(c: &mut Criterion) {
    let acl = Arc::new(Acl::open_unsafe());
    c.bench_function("apply_create_10k", |b| {
        b.iter(|| {
            let mut tree = DataTree::new();
            let mut triggers = Vec::new();
            for i in 0..10_000i64 {
                let op = TxnOp::Create {
                    path: format!("/n{i}"),
                    data: Some(Bytes::from_static(&[1; 100])),
                    acl: acl.clone(),
                    ephemeral_owner: 0,
                    parent_cversion: i as i32 + 1,
                    opcode: op::CREATE,
                };
                triggers.clear();
                tree.apply(
                    &Txn {
                        zxid: i + 1,
                        time_ms: 0,
                        session_id: 1,
                        cxid: 0,
                        op,
                    },
                    &mut triggers,
                );
            }
            tree
        })
    });
}

criterion_group!(benches, codec, apply);
criterion_main!(benches);
