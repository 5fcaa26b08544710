//! Times the core's hot operations natively: `cargo run --release --example hotpath`.
//! "place" is the first `poll_timeout_ms` after a burst: the staged timers
//! going into the wheel (time/wheel.rs), which `call_later` no longer does.
use std::time::Instant;
use wasmloop_core::event_loop::{EventLoop, Host};

struct Clock(u64);
impl Host for Clock {
    fn now(&mut self) -> u64 {
        self.0
    }
    fn take_ready(&mut self, _max: u32) -> Vec<u32> {
        Vec::new()
    }
    fn take_completed(&mut self, _max: u32) -> Vec<u32> {
        Vec::new()
    }
}

fn main() {
    const N: usize = 1_000_000;
    let mut l = EventLoop::new(Clock(1_000_000_000));
    for round in 0..3 {
        let t = Instant::now();
        let ids: Vec<f64> = (0..N)
            .map(|i| l.call_later(1.0 + (i % 50) as f64))
            .collect();
        let schedule = t.elapsed();
        let t = Instant::now();
        for &id in &ids {
            let slot = (id as u64 & ((1 << 26) - 1)) as u32;
            l.cancel(slot, (id as u64 >> 26) as u32);
        }
        let cancel = t.elapsed();
        let t = Instant::now();
        for i in 0..N {
            l.call_later(1.0 + (i % 50) as f64);
        }
        let schedule2 = t.elapsed();
        let t = Instant::now();
        let _ = l.poll_timeout_ms();
        let place = t.elapsed();
        let t = Instant::now();
        let mut fired = 0;
        for _ in 0..60 {
            l.host_mut().0 += 1_000_000;
            fired += l.run_once().len();
        }
        let expire = t.elapsed();
        let t = Instant::now();
        for _ in 0..N {
            l.call_soon();
        }
        fired += l.run_once().len();
        let soon = t.elapsed();
        let per = |d: std::time::Duration| d.as_nanos() as f64 / N as f64;
        println!(
            "round {round}: call_later {:.1} ns, cancel {:.1} ns, call_later(reuse) {:.1} ns, place {:.1} ns, expire {:.1} ns, call_soon+run {:.1} ns ({fired} fired)",
            per(schedule), per(cancel), per(schedule2), per(place), per(expire), per(soon)
        );
    }
}
