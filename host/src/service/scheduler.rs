//! Cron schedules: one task per scheduled dataset sleeps until the next tick and asks for a pass.
//!
//! The scheduler knows nothing of passes: a [`Runner`] starts one (or says the previous one is still running, and the
//! tick is skipped and counted). Time comes from a [`Clock`], so that tests run days of schedule in paused tokio time.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

/// Wall-clock time for schedules.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that follows tokio's (pausable) time from a fixed start: with `tokio::time::pause`, schedules run at
/// virtual speed.
pub struct TokioClock {
    base: DateTime<Utc>,
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn starting_at(base: DateTime<Utc>) -> TokioClock {
        TokioClock {
            base,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = tokio::time::Instant::now() - self.start;
        self.base + chrono::Duration::from_std(elapsed).expect("elapsed time fits")
    }
}

/// What happened at a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// A pass started (it runs on its own; the schedule does not wait for it).
    Started,
    /// The dataset's previous pass was still running: this tick is skipped.
    Skipped,
    /// No pass for another reason (the runner says which).
    NotStarted,
}

/// Starts passes for the scheduler.
pub trait Runner: Send + Sync + 'static {
    /// Starts a scheduled pass of `dataset` unless one is running.
    fn tick(&self, dataset: &str) -> Tick;
    /// The dataset's next scheduled run (`None`: none any more).
    fn next_run(&self, dataset: &str, at: Option<DateTime<Utc>>);
}

/// Runs `dataset`'s schedule until `stop` is cancelled or the schedule has no more ticks.
pub async fn run_schedule(
    dataset: String,
    schedule: cron::Schedule,
    clock: Arc<dyn Clock>,
    runner: Arc<dyn Runner>,
    stop: CancellationToken,
) {
    let mut after = clock.now();
    loop {
        let Some(next) = schedule.after(&after).next() else {
            runner.next_run(&dataset, None);
            return;
        };
        runner.next_run(&dataset, Some(next));
        let wait = (next - clock.now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        if runner.tick(&dataset) == Tick::Skipped {
            tracing::warn!(dataset, "previous pass still running: tick skipped");
        }
        // The next tick strictly after this one, even if the clock reads a hair early; if a tick was late (a
        // suspended machine), ticks missed meanwhile are not replayed: the next one is after now.
        after = next.max(clock.now());
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::str::FromStr;
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    /// A runner whose passes take `pass_secs` of (paused) tokio time; records every tick.
    struct Recorder {
        clock: Arc<dyn Clock>,
        pass_secs: u64,
        fail_every: Option<u32>,
        running: Mutex<HashMap<String, bool>>,
        log: Mutex<Vec<(String, DateTime<Utc>, Tick)>>,
        finished: Mutex<Vec<(String, bool)>>,
        me: Mutex<Option<std::sync::Weak<Recorder>>>,
    }

    impl Recorder {
        fn new(clock: Arc<dyn Clock>, pass_secs: u64, fail_every: Option<u32>) -> Arc<Recorder> {
            let r = Arc::new(Recorder {
                clock,
                pass_secs,
                fail_every,
                running: Mutex::default(),
                log: Mutex::default(),
                finished: Mutex::default(),
                me: Mutex::default(),
            });
            *r.me.lock().unwrap() = Some(Arc::downgrade(&r));
            r
        }
    }

    impl Runner for Recorder {
        fn tick(&self, dataset: &str) -> Tick {
            let mut running = self.running.lock().unwrap();
            let tick = if running.get(dataset).copied().unwrap_or(false) {
                Tick::Skipped
            } else {
                running.insert(dataset.to_string(), true);
                let me = self.me.lock().unwrap().as_ref().unwrap().upgrade().unwrap();
                let ds = dataset.to_string();
                let n = self.log.lock().unwrap().iter().filter(|l| l.2 == Tick::Started).count() as u32 + 1;
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(me.pass_secs)).await;
                    let ok = me.fail_every.is_none_or(|k| !n.is_multiple_of(k));
                    me.finished.lock().unwrap().push((ds.clone(), ok));
                    me.running.lock().unwrap().insert(ds, false);
                });
                Tick::Started
            };
            self.log
                .lock()
                .unwrap()
                .push((dataset.to_string(), self.clock.now(), tick));
            tick
        }
        fn next_run(&self, _dataset: &str, _at: Option<DateTime<Utc>>) {}
    }

    /// Runs `expr` from 2026-01-01T00:00:00Z in (paused) tokio time with a [`Recorder`] whose passes take
    /// `pass_secs` and fail every `fail_every`th time.
    fn start(
        expr: &str,
        pass_secs: u64,
        fail_every: Option<u32>,
    ) -> (Arc<Recorder>, CancellationToken, tokio::task::JoinHandle<()>) {
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(at("2026-01-01T00:00:00Z")));
        let runner = Recorder::new(clock.clone(), pass_secs, fail_every);
        let stop = CancellationToken::new();
        let schedule = cron::Schedule::from_str(expr).unwrap();
        let task = tokio::spawn(run_schedule(
            "logs".into(),
            schedule,
            clock,
            runner.clone(),
            stop.clone(),
        ));
        (runner, stop, task)
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[tokio::test(start_paused = true)]
    async fn a_schedule_fires_on_its_cron_ticks_in_utc() {
        let (runner, stop, task) = start("0 0 */6 * * *", 1, None);
        // A whole day of schedule in virtual time.
        tokio::time::sleep(Duration::from_secs(86_400 + 60)).await;
        stop.cancel();
        task.await.unwrap();
        let times: Vec<String> = runner.log.lock().unwrap().iter().map(|l| l.1.to_rfc3339()).collect();
        assert_eq!(
            times,
            [
                "2026-01-01T06:00:00+00:00",
                "2026-01-01T12:00:00+00:00",
                "2026-01-01T18:00:00+00:00",
                "2026-01-02T00:00:00+00:00"
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_tick_while_the_previous_pass_runs_is_skipped_and_counted() {
        // Every 10 s, passes of 25 s: each pass covers the two ticks after its start.
        let (runner, stop, task) = start("*/10 * * * * *", 25, None);
        tokio::time::sleep(Duration::from_secs(61)).await;
        stop.cancel();
        task.await.unwrap();
        let ticks: Vec<(u32, Tick)> = runner
            .log
            .lock()
            .unwrap()
            .iter()
            .map(|l| ((l.1 - at("2026-01-01T00:00:00Z")).num_seconds() as u32, l.2))
            .collect();
        use Tick::*;
        assert_eq!(
            ticks,
            [
                (10, Started),
                (20, Skipped),
                (30, Skipped),
                (40, Started),
                (50, Skipped),
                (60, Skipped)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_pass_does_not_stop_the_schedule() {
        // Every second pass fails.
        let (runner, stop, task) = start("0 * * * * *", 1, Some(2));
        tokio::time::sleep(Duration::from_secs(5 * 60 + 30)).await;
        stop.cancel();
        task.await.unwrap();
        let finished = runner.finished.lock().unwrap().clone();
        let oks: Vec<bool> = finished.iter().map(|f| f.1).collect();
        assert_eq!(oks, [true, false, true, false, true]);
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_a_schedule_ends_its_task_at_once() {
        // Yearly: the task would sleep for months.
        let (runner, stop, task) = start("0 0 0 1 1 *", 1, None);
        tokio::task::yield_now().await;
        let before = tokio::time::Instant::now();
        stop.cancel();
        task.await.unwrap();
        assert_eq!(tokio::time::Instant::now(), before);
        assert!(runner.log.lock().unwrap().is_empty());
    }
}
