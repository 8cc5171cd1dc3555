// The leak detector's own code (common/leak_model.cc) driven by a virtual clock and
// synthetic sampled sites, so that days of a service's life run in seconds. Each site is a
// stream of sampled blocks as the library's sampler would see them (one sample per `interval`
// bytes allocated, Poisson in time) with a lifetime law: a leak keeps what it allocates, churn
// frees after an exponential lifetime, a cache fills and then evicts one entry per insertion
// (its sampled count moving with the sampler's coins for the entries it takes in and lets go),
// a batch is built and freed every cycle (a sawtooth), a start-up working set is built once.
// Checks run as the library runs them (probes every interval/20, the check's budget shared by
// Tarone's correction), and the tests assert the figures the README states.
//
// RSR_SIM_REPORT=1 prints the README's tables.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "../../common/leak_model.h"

namespace lm = rsr::leakmodel;

namespace {

constexpr double kAlpha = 0.01;  // must match preload/cold/leaks.cc (kAlpha)
constexpr int64_t kMinSiteBytes = 1 << 20;
constexpr double kCacheEntryBytes = 4096;  // the size of a cache's entries

enum class Kind { kLeak, kChurn, kCache, kSawtooth, kStartup, kLeakInChurn };

struct SiteSpec {
  Kind kind;
  double rate = 0;      // bytes/s allocated (leak, churn, cache fill, sawtooth build, start-up build)
  double lifetime_s = 0;  // churn: mean lifetime; cache: none
  double size = 0;      // bytes: cache capacity, batch size, start-up set size
  double period_s = 0;  // sawtooth cycle
  double turnover = 0;  // cache: bytes/s replaced once full; leak in churn: churn bytes/s
  double initial = 0;   // churn: bytes live at start (a working set loaded at start that turns over)
};

struct SimSite {
  SiteSpec spec;
  lm::Series series;
  int64_t live = 0, births = 0, deaths = 0;  // deaths: durable ones (lived across a probe)
  int64_t churn_live = 0;  // leak in churn: the churning part
  double inserted = 0;  // cache: entries taken in so far
};

struct Sim {
  int64_t interval_ms;   // check interval
  int64_t probe_ms;
  double sampling;       // bytes per sample
  std::mt19937_64 rng;
  std::vector<std::unique_ptr<SimSite>> sites;
  lm::Series heap;
  int64_t base_bytes = 64 << 20;
  int64_t min_site_bytes = kMinSiteBytes;  // RSR_LEAK_MIN_SITE_BYTES
  int64_t t_ms = 0;

  Sim(int64_t interval_s, double sampling_bytes, uint64_t seed)
      : interval_ms(interval_s * 1000), sampling(sampling_bytes), rng(seed) {
    probe_ms = std::clamp<int64_t>(interval_ms / 20, 100, 15000);
    heap.point_ms = probe_ms;
    heap.drop_min_bytes = kMinSiteBytes;
    heap.drop_share = 0.2 / 2;
  }
  SimSite& add(const SiteSpec& spec) {
    sites.push_back(std::make_unique<SimSite>());
    SimSite& s = *sites.back();
    s.spec = spec;
    s.series.point_ms = probe_ms;
    s.series.drop_min_bytes = kMinSiteBytes;
    s.live = s.births = static_cast<int64_t>(spec.initial / sampling);
    return s;
  }

  int64_t poisson(double mean) {
    if (mean <= 0) return 0;
    return std::poisson_distribution<int64_t>(mean)(rng);
  }
  int64_t binomial(int64_t n, double p) {
    if (n <= 0 || p <= 0) return 0;
    return std::binomial_distribution<int64_t>(n, std::min(1.0, p))(rng);
  }

  // What a sample stands for (the estimator's weight): a cache's entries are sampled whole.
  double sample_bytes(const SiteSpec& k) const {
    return k.kind == Kind::kCache ? kCacheEntryBytes / -std::expm1(-kCacheEntryBytes / sampling) : sampling;
  }

  void step_site(SimSite& s, double dt) {
    const SiteSpec& k = s.spec;
    const double t = static_cast<double>(t_ms) / 1000.0;
    auto born = [&](int64_t n) { s.live += n; s.births += n; };
    // Exponential lifetimes are memoryless: a death is durable (the block lived a probe interval
    // or longer) with probability exp(-probe / lifetime).
    const double probe_s = static_cast<double>(probe_ms) / 1000.0;
    auto died = [&](int64_t n, double lifetime_s = INFINITY) {
      n = std::min(n, s.live);
      s.live -= n;
      s.deaths += std::isfinite(lifetime_s) ? binomial(n, std::exp(-probe_s / lifetime_s)) : n;
    };
    switch (k.kind) {
      case Kind::kLeak:
        born(poisson(k.rate / sampling * dt));
        break;
      case Kind::kChurn: {
        born(poisson(k.rate / sampling * dt));
        died(binomial(s.live, 1.0 - std::exp(-dt / k.lifetime_s)), k.lifetime_s);
        break;
      }
      case Kind::kLeakInChurn: {
        const int64_t c = poisson(k.turnover / sampling * dt);
        s.churn_live += c;
        born(c);
        const int64_t d = binomial(s.churn_live, 1.0 - std::exp(-dt / k.lifetime_s));
        s.churn_live -= d;
        died(d, k.lifetime_s);
        born(poisson(k.rate / sampling * dt));
        break;
      }
      case Kind::kCache: {
        // Entries of kCacheEntryBytes, each sampled on its own as it comes in (q); once full,
        // each insertion evicts the oldest entry, which was sampled or not at its birth, as the
        // entries held are: the live samples wander around entries x q and come back to it
        // within a turnover of the cache.
        const double entries = k.size / kCacheEntryBytes;
        const double q = -std::expm1(-kCacheEntryBytes / sampling);
        if (s.inserted < entries) {  // filling
          const int64_t in = std::min<int64_t>(poisson(k.rate / kCacheEntryBytes * dt),
                                               static_cast<int64_t>(std::ceil(entries - s.inserted)));
          s.inserted += static_cast<double>(in);
          born(binomial(in, q));
          break;
        }
        const int64_t replaced = poisson(k.turnover / kCacheEntryBytes * dt);
        const int64_t evicted = binomial(replaced, static_cast<double>(s.live) / entries);
        born(binomial(replaced, q));
        died(evicted);
        break;
      }
      case Kind::kSawtooth: {
        // Builds `size` at `rate`, then frees it all; the cycle is `period_s`.
        const double phase = std::fmod(t, k.period_s);
        const double build_s = k.size / k.rate;
        if (phase < dt && t > dt) died(s.live);
        if (phase < build_s) born(poisson(k.rate / sampling * dt));
        break;
      }
      case Kind::kStartup:
        if (t < k.size / k.rate) born(poisson(k.rate / sampling * dt));
        break;
    }
  }

  void probe() {
    const double dt = static_cast<double>(probe_ms) / 1000.0;
    t_ms += probe_ms;
    int64_t total = base_bytes;
    for (auto& sp : sites) {
      SimSite& s = *sp;
      step_site(s, dt);
      const int64_t bytes = static_cast<int64_t>(static_cast<double>(s.live) * sample_bytes(s.spec));
      total += bytes;
      s.series.add(lm::Probe{t_ms, bytes, s.live, s.births, s.deaths, 0});
    }
    heap.add(lm::Probe{t_ms, total, 0, 0, 0, total});
  }

  struct Check {
    std::vector<lm::SiteVerdict> sites;
    lm::HeapVerdict heap;
  };
  Check check(double growth_threshold = 0.2, double ratio_threshold = 1.0) {
    Check c;
    std::vector<const lm::Series*> ptrs;
    for (auto& s : sites) ptrs.push_back(&s->series);
    c.sites.resize(ptrs.size());
    std::vector<double> scratch(ptrs.size());
    lm::SiteParams params;
    params.min_bytes = min_site_bytes;
    params.ratio_threshold = ratio_threshold;
    lm::judge_sites(ptrs.data(), ptrs.size(), t_ms, params, kAlpha, c.sites.data(), scratch.data());
    for (size_t i = 0; i < sites.size(); ++i) sites[i]->series.named = c.sites[i].growing;
    c.heap = lm::judge_heap(heap, t_ms, 3 * interval_ms, growth_threshold, kMinSiteBytes);
    return c;
  }
  // Runs until `until_ms`, calling `on_check` at every check.
  template <class F>
  void run(int64_t until_ms, F on_check) {
    int64_t next_check = interval_ms;
    while (t_ms < until_ms) {
      probe();
      if (t_ms >= next_check) {
        on_check(check());
        next_check += interval_ms;
      }
    }
  }
};

// A leak-free service's usual residents: short churn, a long-lived random walk, a cache, a batch
// sawtooth and a start-up set.
void add_leak_free(Sim& sim) {
  sim.add({Kind::kChurn, 4e6, 0.05, 0, 0, 0});          // request temporaries
  sim.add({Kind::kChurn, 2e5, 600, 0, 0, 0});           // sessions living ten minutes
  sim.add({Kind::kChurn, 2e4, 3 * 3600, 0, 0, 0, 2e4 * 3 * 3600});  // loaded at start, turning over in hours
  sim.add({Kind::kCache, 2e6, 0, 64e6, 0, 5e4});        // cache: fills, then slow turnover
  sim.add({Kind::kSawtooth, 6e6, 0, 40e6, 60, 0});      // 40 MB batch every minute
  sim.add({Kind::kStartup, 64e6, 0, 64e6, 0, 0});       // index built in the first second
}

struct Naming {
  double first_s = -1;  // first check that named the leak
  int checks_after = 0, named_after = 0;
};

Naming run_leak(double rate, double sampling, int64_t interval_s, double hours, uint64_t seed) {
  Sim sim(interval_s, sampling, seed);
  add_leak_free(sim);
  const size_t leak = sim.sites.size();
  sim.add({Kind::kLeak, rate, 0, 0, 0, 0});
  Naming n;
  sim.run(static_cast<int64_t>(hours * 3600e3), [&](const Sim::Check& c) {
    const bool named = c.sites[leak].growing;
    if (n.first_s < 0) {
      if (named) n.first_s = static_cast<double>(sim.t_ms) / 1000.0;
      return;
    }
    ++n.checks_after;
    n.named_after += named;
  });
  return n;
}

bool report() { return std::getenv("RSR_SIM_REPORT") != nullptr; }

TEST(Simulation, LeakNamedAtEveryCheckFor24Hours) {
  // 100 KiB/s (8 GiB a day), 512 KiB sampling, 300 s checks.
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    const Naming n = run_leak(100 * 1024, 512 * 1024, 300, 24, seed);
    if (report()) std::printf("seed %lu: first named at %.0f s, named at %d of %d checks after\n",
                              static_cast<unsigned long>(seed), n.first_s, n.named_after, n.checks_after);
    ASSERT_GT(n.first_s, 0) << "seed " << seed;
    EXPECT_LE(n.first_s, 3 * 300.0) << "seed " << seed;
    EXPECT_EQ(n.named_after, n.checks_after) << "seed " << seed;
  }
}

TEST(Simulation, FalseAlarmsOverTenThousandLeakFreeChecks) {
  // 10 services x 1,012 checks (300 s checks, about 84 hours each): 10,000 checks after their
  // first hour, and the 120 of the first hour (while the cache fills, the first batches are built
  // and the session table grows to its steady size) counted apart.
  int checks = 0, alarms = 0, early_checks = 0, early_alarms = 0, heap_alarms = 0;
  for (uint64_t seed = 100; seed < 110; ++seed) {
    Sim sim(300, 512 * 1024, seed);
    add_leak_free(sim);
    sim.run(1012 * 300 * 1000LL, [&](const Sim::Check& c) {
      bool any = false;
      for (const lm::SiteVerdict& v : c.sites) any = any || v.growing;
      const bool early = sim.t_ms <= 3600 * 1000;
      (early ? early_checks : checks) += 1;
      (early ? early_alarms : alarms) += any;
      heap_alarms += !early && c.heap.growing;
    });
  }
  if (report())
    std::printf("leak-free: %d alarms in %d checks after the first hour (%d memory_growth); %d in the %d checks before\n",
                alarms, checks, heap_alarms, early_alarms, early_checks);
  EXPECT_EQ(checks, 10000);
  EXPECT_LE(alarms * 1000, checks);
  EXPECT_EQ(heap_alarms, 0);
}

TEST(Simulation, SawtoothCacheAndStartupSetNotNamedOnceSeen) {
  // At the test programs' pace: 5 s checks, a 40 MB batch every 6.5 s, a 64 MB cache that fills
  // in 4 s, a 64 MB set built in the first second. "Seen": the sawtooth after two cycles; the
  // cache and the start-up set once the process lived eight times their build (the reference
  // level is an eighth into the life); the heap once its 3-check window and a cycle are past the
  // cache's fill.
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    Sim sim(5, 512 * 1024, seed);
    sim.add({Kind::kSawtooth, 8e6, 0, 40e6, 6.5, 0});
    sim.add({Kind::kCache, 16e6, 0, 64e6, 0, 1e6});
    sim.add({Kind::kStartup, 64e6, 0, 64e6, 0, 0});
    sim.add({Kind::kChurn, 50e6, 0.01, 0, 0, 0});
    int after = 0;
    sim.run(600 * 1000, [&](const Sim::Check& c) {
      const int64_t t = sim.t_ms;
      if (t >= 2 * 6500 + 5000) {
        ++after;
        EXPECT_FALSE(c.sites[0].growing) << "sawtooth, seed " << seed << " at " << t;
        EXPECT_FALSE(c.sites[3].growing) << "churn, seed " << seed << " at " << t;
      }
      if (t >= 8 * 1000 + 5000) {
        EXPECT_FALSE(c.sites[2].growing) << "start-up set, seed " << seed << " at " << t;
      }
      if (t >= 8 * 4000 + 5000) {
        EXPECT_FALSE(c.sites[1].growing) << "cache, seed " << seed << " at " << t;
      }
      if (t >= 4000 + 3 * 5000 + 10000) {
        EXPECT_FALSE(c.heap.growing) << "heap, seed " << seed << " at " << t;
      }
    });
    EXPECT_GT(after, 100);
  }
}

TEST(Simulation, CachesTurningOverAreRarelyNamedInTheirFirstMinute) {
  // The leak-free program of tests/leaks (steady): two full caches turning over at its pace
  // (8 MB replaced at 533 KB/s, 5 MB at 26 KB/s) beside churn; 1 s checks, 16 KiB sampling,
  // judged from 5 s on, as that test judges. Their sampled counts wander (a few percent of the
  // cache) while little of them has turned over, as a random walk would: what the sign test
  // takes for no growth, at the level of each check.
  const int runs = 300;
  int named = 0;
  for (uint64_t seed = 1; seed <= runs; ++seed) {
    Sim sim(1, 16384, seed);
    sim.min_site_bytes = 256 << 10;  // that test's setting
    sim.add({Kind::kCache, 160e6, 0, 8.2e6, 0, 533e3});
    sim.add({Kind::kCache, 100e6, 0, 5.3e6, 0, 26e3});
    sim.add({Kind::kChurn, 50e6, 0.01, 0, 0, 0});
    bool any = false;
    sim.run(45 * 1000, [&](const Sim::Check& c) {
      if (sim.t_ms < 5000) return;
      for (const lm::SiteVerdict& v : c.sites) any = any || v.growing;
    });
    named += any;
  }
  if (report()) std::printf("caches turning over: named in %d of %d runs of 45 s\n", named, runs);
  // The check's budget is per check: over a young process's many checks it adds up (4 of 300
  // runs here, fixed seeds). The bar keeps that from growing unseen.
  EXPECT_LE(named, runs * 2 / 100);
}

TEST(Simulation, SlowLeakUnderChurnNamedWithin90Seconds) {
  // ~90 KiB/s at its own site beside heavy churn and a 64 MB index; 5 s checks, 512 KiB sampling.
  int named_in_time = 0;
  const int runs = 40;
  for (uint64_t seed = 1; seed <= runs; ++seed) {
    Sim sim(5, 512 * 1024, seed);
    sim.add({Kind::kStartup, 64e6, 0, 64e6, 0, 0});
    sim.add({Kind::kChurn, 80e6, 0.005, 0, 0, 0});
    sim.add({Kind::kChurn, 20e6, 0.2, 0, 0, 0});
    sim.add({Kind::kLeak, 90 * 1024, 0, 0, 0, 0});
    double first = -1;
    int after = 0, named_after = 0;
    sim.run(300 * 1000, [&](const Sim::Check& c) {
      if (first < 0) {
        if (c.sites[3].growing) first = static_cast<double>(sim.t_ms) / 1000.0;
        return;
      }
      ++after;
      named_after += c.sites[3].growing;
    });
    if (first > 0 && first <= 90) ++named_in_time;
    EXPECT_EQ(named_after, after) << "seed " << seed;
  }
  if (report()) std::printf("slow leak under churn named within 90 s in %d of %d runs\n", named_in_time, runs);
  EXPECT_GE(named_in_time, runs * 9 / 10);
}

TEST(Simulation, TimeToFirstNamingTable) {
  if (!report()) GTEST_SKIP() << "set RSR_SIM_REPORT=1 for the README's table";
  const double rates[] = {10 * 1024, 30 * 1024, 100 * 1024, 300 * 1024, 1024 * 1024, 4096 * 1024};
  const double samplings[] = {64 * 1024, 512 * 1024, 4096 * 1024};
  for (int64_t interval : {5, 300}) {
    std::printf("\nchecks every %ld s: median time to first naming (s), 9 runs\n", static_cast<long>(interval));
    std::printf("| leak rate | 64 KiB | 512 KiB | 4 MiB |\n| --- | --- | --- | --- |\n");
    for (double r : rates) {
      std::printf("| %.0f KiB/s |", r / 1024);
      for (double s : samplings) {
        std::vector<double> firsts;
        for (uint64_t seed = 1; seed <= 9; ++seed) {
          const Naming n = run_leak(r, s, interval, interval == 5 ? 1 : 24, seed);
          firsts.push_back(n.first_s < 0 ? INFINITY : n.first_s);
        }
        std::sort(firsts.begin(), firsts.end());
        if (std::isfinite(firsts[4])) std::printf(" %.0f |", firsts[4]);
        else std::printf(" not named |");
      }
      std::printf("\n");
    }
  }
}

}  // namespace
