//! The load generator: a fixed number of workers, each sending its next request
//! as soon as the previous one is answered (a closed loop, as keep-alive clients
//! behave), for a warm-up that is not counted and then for the measured time.
//! Every measured request's latency is kept, so percentiles are exact.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::server::ProcessWatch;

/// One client of a scenario, with whatever state it carries between requests.
pub trait Worker: Send + 'static {
    /// Sends one request and waits for its answer.
    fn request(&mut self) -> impl Future<Output = anyhow::Result<Sent>> + Send;

    /// What the request just sent was, for a worker that sends more than one
    /// kind (each kind is a row of the report); `None` for a worker of one kind.
    fn kind(&self) -> Option<&'static str> {
        None
    }

    /// Waits for the worker's next turn, for a worker that keeps a pace rather
    /// than sending as soon as it is answered. The wait is not latency.
    fn pace(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// What became of a worker's turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// One request was answered.
    Answered,
    /// One request was answered that is not measured: the load beside the
    /// scenario's own requests; or, for a paced worker, a turn with nothing to
    /// send yet.
    Beside,
    /// The worker has nothing left to do (no fresh appeal remains).
    Exhausted,
}

/// What the workers of one phase did in the measured time.
#[derive(Debug, Clone, Default)]
pub struct Measurement {
    pub requests: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// From the end of the warm-up to the last answer (the measured time, or less
    /// if the workers ran out of work).
    pub elapsed: Duration,
    pub exhausted: bool,
    pub latency: Latency,
    /// For deliveries to subscribers: the time from sending the mutation, where
    /// `latency` counts from its answer.
    pub latency_from_request: Option<Latency>,
    /// The server's CPU time (user and system) over the whole phase, warm-up
    /// included, when watched.
    pub server_cpu_seconds: Option<f64>,
    /// Requests answered over the whole phase, warm-up included.
    pub answered_in_phase: u64,
    /// No answer arrived within the measured time, which was stretched to the
    /// last answer.
    pub stretched: bool,
    /// For workers of several kinds ([`Worker::kind`]): each kind's requests,
    /// errors and latency over the same measured time, in the order first sent.
    pub kinds: Vec<(&'static str, Measurement)>,
}

impl Measurement {
    pub fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Latency {
    /// The percentiles of `samples` (any order), nearest-rank.
    pub fn of(mut samples: Vec<Duration>) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        let at = |quantile: f64| {
            let rank = ((quantile * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            samples[rank - 1].as_secs_f64() * 1e3
        };
        Latency { p50: at(0.50), p95: at(0.95), p99: at(0.99), max: at(1.0) }
    }
}

/// Runs `workers` concurrently: a `warmup` that is not counted, then `duration`
/// measured, and reads the CPU time `server` spends over the whole phase.
///
/// A request counts when its answer arrives within the measured time. When none
/// does (each request takes longer than the whole measured time), the measured
/// time stretches to the last answer, and every request answered after the
/// warm-up counts.
pub async fn drive<W: Worker>(
    workers: Vec<W>,
    warmup: Duration,
    duration: Duration,
    server: Option<ProcessWatch>,
) -> Measurement {
    let cpu_before = server.as_ref().and_then(|server| server.usage().ok());
    let started = Instant::now();
    let measured_from = started + warmup;
    let until = measured_from + duration;
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|mut worker| {
            tokio::spawn(async move {
                let mut own = WorkerTally::default();
                while Instant::now() < until {
                    worker.pace().await;
                    if Instant::now() >= until {
                        break;
                    }
                    let sent_at = Instant::now();
                    let result = worker.request().await;
                    let answered_at = Instant::now();
                    let kind = worker.kind();
                    match result {
                        Ok(Sent::Answered) => own.answers.push(Answer { kind, sent_at, answered_at }),
                        Ok(Sent::Beside) => {}
                        Ok(Sent::Exhausted) => {
                            own.exhausted = true;
                            break;
                        }
                        Err(error) => {
                            own.failures.push((kind, answered_at));
                            let error = format!("{error:#}");
                            if let Some(kind) = kind
                                && !own.first_errors.iter().any(|(known, _)| *known == kind)
                            {
                                own.first_errors.push((kind, error.clone()));
                            }
                            own.first_error.get_or_insert(error);
                        }
                    }
                }
                own
            })
        })
        .collect();
    let mut measurement = Measurement::default();
    let mut answers: Vec<Answer> = Vec::new();
    let mut failures: Vec<(Option<&'static str>, Instant)> = Vec::new();
    let mut first_errors: Vec<(&'static str, String)> = Vec::new();
    for task in tasks {
        let Ok(own) = task.await else {
            measurement.errors += 1;
            measurement.first_error.get_or_insert_with(|| "a worker panicked".to_owned());
            continue;
        };
        measurement.exhausted |= own.exhausted;
        if measurement.first_error.is_none() {
            measurement.first_error = own.first_error;
        }
        answers.extend(own.answers);
        failures.extend(own.failures);
        for (kind, error) in own.first_errors {
            if !first_errors.iter().any(|(known, _)| *known == kind) {
                first_errors.push((kind, error));
            }
        }
    }
    let cpu_after = server.as_ref().and_then(|server| server.usage().ok());
    measurement.server_cpu_seconds =
        cpu_before.zip(cpu_after).map(|(before, after)| after.cpu_seconds - before.cpu_seconds);
    measurement.answered_in_phase = answers.len() as u64;

    let in_time = |at: &Instant| (measured_from..=until).contains(at);
    let last_answer = answers.iter().map(|answer| answer.answered_at).max();
    let last_turn = last_answer.max(failures.iter().map(|(_, at)| *at).max());
    let window_end = if answers.iter().any(|answer| in_time(&answer.answered_at)) {
        // Workers that ran out of work early leave a shorter measured time.
        if measurement.exhausted { last_turn.unwrap_or(until).min(until) } else { until }
    } else {
        measurement.stretched = last_answer.is_some_and(|last| last > until);
        last_answer.unwrap_or(until).max(until)
    };
    let counted = |at: &Instant| (measured_from..=window_end).contains(at);
    let elapsed = window_end.saturating_duration_since(measured_from);
    let latencies = |kind: Option<&'static str>| -> Vec<Duration> {
        answers
            .iter()
            .filter(|answer| kind.is_none_or(|kind| answer.kind == Some(kind)) && counted(&answer.answered_at))
            .map(|answer| answer.answered_at - answer.sent_at)
            .collect()
    };
    let failed = |kind: Option<&'static str>| {
        failures.iter().filter(|(of, at)| kind.is_none_or(|kind| *of == Some(kind)) && counted(at)).count() as u64
    };
    let mut kinds: Vec<&'static str> = Vec::new();
    for kind in answers.iter().map(|answer| answer.kind).chain(failures.iter().map(|(kind, _)| *kind)).flatten() {
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    measurement.kinds = kinds
        .into_iter()
        .map(|kind| {
            let latencies = latencies(Some(kind));
            let first_error = first_errors.iter().find(|(known, _)| *known == kind).map(|(_, error)| error.clone());
            let of_kind = Measurement {
                requests: latencies.len() as u64,
                errors: failed(Some(kind)),
                first_error,
                elapsed,
                exhausted: measurement.exhausted,
                latency: Latency::of(latencies),
                stretched: measurement.stretched,
                ..Measurement::default()
            };
            (kind, of_kind)
        })
        .collect();
    let latencies = latencies(None);
    measurement.requests = latencies.len() as u64;
    measurement.errors += failed(None);
    measurement.elapsed = elapsed;
    measurement.latency = Latency::of(latencies);
    measurement
}

/// One answered request: of which kind, when sent, when answered.
struct Answer {
    kind: Option<&'static str>,
    sent_at: Instant,
    answered_at: Instant,
}

#[derive(Default)]
struct WorkerTally {
    answers: Vec<Answer>,
    failures: Vec<(Option<&'static str>, Instant)>,
    first_error: Option<String>,
    /// The first error of each kind.
    first_errors: Vec<(&'static str, String)>,
    exhausted: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let latency = Latency::of(samples);
        assert_eq!((latency.p50, latency.p95, latency.p99, latency.max), (50.0, 95.0, 99.0, 100.0));
        assert_eq!(Latency::of(Vec::new()), Latency::default());
        assert_eq!(Latency::of(vec![Duration::from_millis(7)]).p99, 7.0);
    }

    struct Counter(u32);

    impl Worker for Counter {
        async fn request(&mut self) -> anyhow::Result<Sent> {
            tokio::time::sleep(Duration::from_millis(2)).await;
            self.0 += 1;
            match self.0 {
                n if n % 10 == 0 => anyhow::bail!("every tenth fails"),
                n if n > 40 => Ok(Sent::Exhausted),
                _ => Ok(Sent::Answered),
            }
        }
    }

    #[tokio::test]
    async fn workers_that_run_out_shorten_the_measured_time() {
        let measurement = drive(vec![Counter(0), Counter(0)], Duration::ZERO, Duration::from_secs(30), None).await;
        assert!(measurement.exhausted);
        assert_eq!(measurement.requests, 72, "36 answered per worker");
        assert_eq!(measurement.errors, 8);
        assert!(measurement.elapsed < Duration::from_secs(5), "{:?}", measurement.elapsed);
        assert_eq!(measurement.first_error.as_deref(), Some("every tenth fails"));
    }

    struct Slow;

    impl Worker for Slow {
        async fn request(&mut self) -> anyhow::Result<Sent> {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(Sent::Answered)
        }
    }

    #[tokio::test]
    async fn requests_slower_than_the_measured_time_stretch_it() {
        let measurement = drive(vec![Slow, Slow, Slow], Duration::ZERO, Duration::from_millis(100), None).await;
        assert!(measurement.stretched);
        assert_eq!(measurement.requests, 3);
        assert!(measurement.elapsed >= Duration::from_millis(290), "{:?}", measurement.elapsed);
        assert!(measurement.latency.p50 >= 290.0, "{:?}", measurement.latency);
    }

    /// Answers quickly as `fast` and slowly as `slow`, in turn, keeping a pace.
    struct TwoKinds {
        sent: u32,
    }

    impl Worker for TwoKinds {
        async fn request(&mut self) -> anyhow::Result<Sent> {
            self.sent += 1;
            let wait = if self.sent.is_multiple_of(2) { 20 } else { 1 };
            tokio::time::sleep(Duration::from_millis(wait)).await;
            Ok(Sent::Answered)
        }

        fn kind(&self) -> Option<&'static str> {
            Some(if self.sent.is_multiple_of(2) { "slow" } else { "fast" })
        }

        async fn pace(&mut self) {
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    #[tokio::test]
    async fn each_kind_is_measured_apart_and_the_pace_is_not_latency() {
        let workers = vec![TwoKinds { sent: 0 }, TwoKinds { sent: 0 }];
        let measurement = drive(workers, Duration::ZERO, Duration::from_millis(600), None).await;
        let names: Vec<_> = measurement.kinds.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, ["fast", "slow"]);
        let (fast, slow) = (&measurement.kinds[0].1, &measurement.kinds[1].1);
        assert_eq!(fast.requests + slow.requests, measurement.requests);
        assert!(fast.latency.p99 < 15.0, "the pace is not counted: {:?}", fast.latency);
        assert!(slow.latency.p50 >= 20.0, "{:?}", slow.latency);
        assert!(measurement.requests <= 2 * 600 / 30, "paced: {}", measurement.requests);
    }
}
