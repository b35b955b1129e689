//! Per-packet cost of the data-path methods on 1400-byte payloads.
//!
//! `cargo bench -p worker --bench methods -- --warm-up-time 1 --measurement-time 2`

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use worker::method::{by_name, MethodSession};

const PAYLOAD: usize = 1400;

fn methods(c: &mut Criterion) {
    let mut group = c.benchmark_group("method");
    group.throughput(Throughput::Bytes(PAYLOAD as u64));
    for name in ["salsa2012+umac", "null", "aes128-gcm", "salsa2012+poly1305"] {
        let spec = by_name(name).unwrap();
        let key: Vec<u8> = (0..spec.key_len()).map(|i| (i * 31 + 7) as u8).collect();
        let now = Instant::now();
        let mut tx = spec.session(&key, true, false, now).unwrap();
        let mut rx = spec.session(&key, false, false, now).unwrap();
        let overhead = spec.overhead();
        let mut buf = vec![0x5a; overhead + PAYLOAD];

        group.bench_function(format!("{name}/encrypt"), |b| {
            b.iter(|| tx.encrypt(black_box(&mut buf)).unwrap())
        });

        // One valid packet, accepted once; decrypting it again does the full authentication and
        // decryption and is then reported as a duplicate. `now` stays within the reorder window.
        let mut packet = vec![0x5a; overhead + PAYLOAD];
        tx.encrypt(&mut packet).unwrap();
        let mut work = packet.clone();
        rx.decrypt(&mut work, now).unwrap();
        group.bench_function(format!("{name}/decrypt"), |b| {
            b.iter(|| {
                work.copy_from_slice(&packet);
                let r = rx.decrypt(black_box(&mut work), now);
                assert!(r.is_ok() || r.is_err_and(|e| e.authenticated()));
            })
        });
    }
    group.finish();
}

/// The primitives on their own, to see where a method's time goes.
fn primitives(c: &mut Criterion) {
    use poly1305::universal_hash::KeyInit;
    use worker::method::salsa::{Key, Rounds};
    use worker::method::simd::Backend;
    let mut group = c.benchmark_group("primitive");
    group.throughput(Throughput::Bytes(PAYLOAD as u64));
    let mut buf = vec![0x5a; PAYLOAD];
    // The backend the methods use, then each one this CPU has.
    let detected = Key::new(&[7u8; 32], Rounds::R12);
    group.bench_function("salsa2012", |b| {
        b.iter(|| detected.stream(&[1u8; 8]).apply(black_box(&mut buf)))
    });
    for backend in Backend::available() {
        let key = Key::with_backend(&[7u8; 32], Rounds::R12, backend);
        group.bench_function(format!("salsa2012/{}", backend.name()), |b| {
            b.iter(|| key.stream(&[1u8; 8]).apply(black_box(&mut buf)))
        });
    }
    group.bench_function("poly1305", |b| {
        b.iter(|| poly1305::Poly1305::new(&[9u8; 32].into()).compute_unpadded(black_box(&buf)))
    });
    let raw = [3u8; worker::method::uhash::KEY_BYTES];
    let key = worker::method::uhash::UhashKey::new(&raw);
    group.bench_function("uhash", |b| b.iter(|| key.hash(black_box(&buf))));
    for backend in Backend::available() {
        let key = worker::method::uhash::UhashKey::with_backend(&raw, backend);
        group.bench_function(format!("uhash/{}", backend.name()), |b| {
            b.iter(|| key.hash(black_box(&buf)))
        });
    }
    group.finish();
}

criterion_group!(benches, methods, primitives);
criterion_main!(benches);
