//! Inflate and inflate + hash: flate2 (zlib-rs with runtime detection) alone, through
//! `EntryStream` (inflate + CRC-32 + size checks), and fused with SHA-384, on 32 MiB of
//! the two kinds of data the benchmark fixture holds (near-random like an OS image,
//! ~3:1 compressible like a ramdisk). Also a whole-pipeline figure for one entry.
//!
//! ```text
//! cargo bench --bench inflate
//! ```

use std::sync::OnceLock;

use divan::counter::BytesCount;
use divan::{black_box, Bencher};
use flate2::{Decompress, FlushDecompress};
use ipswcheck::archive::{Entry, EntryStream, Method};
use ipswcheck::digest::DigestAlgorithm;
use ipswcheck_fixture::rng::FillStream;
use ipswcheck_fixture::zipwriter::zip_in_memory;
use ipswcheck_fixture::{Fill, ZipOptions};

fn main() {
    divan::main();
}

const LEN: usize = 32 << 20;

#[derive(Debug, Clone, Copy)]
enum Kind {
    NearRandom,
    Compressible,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::NearRandom => "near_random",
            Kind::Compressible => "compressible",
        })
    }
}

/// A one-entry zip of `LEN` bytes of `kind`, deflated at level 6, and its entry.
struct Sample {
    zip: Vec<u8>,
    entry: Entry,
    raw: std::ops::Range<usize>,
}

fn sample(kind: Kind) -> &'static Sample {
    static SAMPLES: [OnceLock<Sample>; 2] = [OnceLock::new(), OnceLock::new()];
    let (slot, fill) = match kind {
        Kind::NearRandom => (&SAMPLES[0], Fill::NearRandom),
        Kind::Compressible => (&SAMPLES[1], Fill::Compressible),
    };
    slot.get_or_init(|| {
        let data = FillStream::new(fill, 0xBE7C).take(LEN);
        let (zip, layout) = zip_in_memory(
            ZipOptions::default(),
            &[(
                "data.bin",
                ipswcheck_fixture::Method::DEFLATED,
                data.as_slice(),
            )],
        )
        .expect("zip in memory");
        let e = &layout.entries[0];
        Sample {
            entry: Entry {
                name: e.name.clone(),
                raw_name: e.name.clone().into_bytes(),
                method: Method::Deflated,
                compressed_size: e.compressed_size,
                size: e.uncompressed_size,
                crc32: e.crc32,
                header_offset: e.local_header_offset,
                encrypted: false,
                is_dir: false,
            },
            raw: e.data_offset as usize..(e.data_offset + e.compressed_size) as usize,
            zip,
        }
    })
}

const KINDS: [Kind; 2] = [Kind::NearRandom, Kind::Compressible];

/// flate2 alone, into an output buffer of `out` bytes (the chunk-size question).
#[divan::bench(args = [64 << 10, 256 << 10, 1 << 20, 4 << 20])]
fn inflate_only_near_random(bencher: Bencher, out: usize) {
    let s = sample(Kind::NearRandom);
    let input = &s.zip[s.raw.clone()];
    let mut buf = vec![0u8; out];
    bencher.counter(BytesCount::new(LEN)).bench_local(|| {
        let mut d = Decompress::new(false);
        let mut pos = 0;
        loop {
            let before = d.total_in();
            let status = d
                .decompress(&input[pos..], &mut buf, FlushDecompress::None)
                .expect("inflate");
            pos += (d.total_in() - before) as usize;
            black_box(&buf);
            if status == flate2::Status::StreamEnd {
                break;
            }
        }
        d.total_out()
    });
}

/// `EntryStream`: inflate + CRC-32 + size check, as the check reads every entry.
#[divan::bench(args = KINDS)]
fn entry_stream(bencher: Bencher, kind: Kind) {
    let s = sample(kind);
    bencher.counter(BytesCount::new(LEN)).bench_local(|| {
        let mut stream = EntryStream::new(&s.zip, &s.entry).expect("entry");
        stream.drain().expect("intact");
        stream.produced()
    });
}

/// `EntryStream` + SHA-384 on the same core: the fused single-core pass.
#[divan::bench(args = KINDS)]
fn entry_stream_sha384(bencher: Bencher, kind: Kind) {
    let s = sample(kind);
    bencher.counter(BytesCount::new(LEN)).bench_local(|| {
        let mut stream = EntryStream::new(&s.zip, &s.entry).expect("entry");
        let mut h = DigestAlgorithm::Sha384.hasher();
        while let Some(chunk) = stream.next_chunk().expect("intact") {
            h.update(chunk);
        }
        h.finish()
    });
}

/// `EntryStream` + SHA-1 on the same core (A9 firmware).
#[divan::bench(args = KINDS)]
fn entry_stream_sha1(bencher: Bencher, kind: Kind) {
    let s = sample(kind);
    bencher.counter(BytesCount::new(LEN)).bench_local(|| {
        let mut stream = EntryStream::new(&s.zip, &s.entry).expect("entry");
        let mut h = DigestAlgorithm::Sha1.hasher();
        while let Some(chunk) = stream.next_chunk().expect("intact") {
            h.update(chunk);
        }
        h.finish()
    });
}
