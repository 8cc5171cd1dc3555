// One run of the `service` program with its planted leak, polled through `check_leaks`, shared by
// the detection test and the quality measurement.
//
// Timeline of a run (I = the check interval, 1 s):
//   start -> "ready" -> the LRU cache fills (~1.5 s) -> "cache_full" (t_full) -> the test sends
//   "leak" -> "leaking" (t_leak) -> the leak becomes significant at t_sig = t_leak + min_site_bytes /
//   (rate of its biggest site, the state buffers): from then on its growth passes both the absolute
//   test and, at the chosen sampling, the sample-count test.
// The poll runs every I/4 and records the `checks` count of the first poll at or after t_sig
// (checks_at_significant) and of the first poll whose indicators name register_session
// (checks_at_found); the delay is their difference in check intervals (0 when found earlier).
//
// cache_lookup is judged only once the detection window can no longer reach back into the fill:
// a level trails by up to 5 probes (0.5 s), the window reaches 3 checks back, and the first
// check after t_full + 0.5 s may come up to one interval later, so the cache is "stable" from
// t_full + 0.5 s + 4 I (+ one poll of slack). Before that the contract itself says the cache's
// growth is in the window; reports then are noted in the trace, not counted. churn_worker is judged
// from t_full on (its pattern never changes).
#pragma once

#include <string>
#include <vector>

#include "leak_support.h"

namespace lk {

struct PlantedOptions {
  // Intervals to keep polling after the cache is stable (0: stop as soon as the leak is found).
  int observe_stable_intervals = 0;
  // Give up looking for the leak this many intervals after it became significant.
  int give_up_intervals = 10;
};

struct PlantedResult {
  std::string setup_error;  // non-empty: the run did not get as far as polling
  bool found = false;
  int64_t checks_at_significant = -1;
  int64_t checks_at_found = -1;
  double t_full = -1, t_leak = -1, t_significant = -1, t_found = -1, t_stable = -1, t_end = -1;
  int64_t checks_at_stable = -1, checks_at_end = -1;
  std::vector<std::string> cache_reported;  // polls after t_stable naming cache_lookup
  std::vector<std::string> churn_reported;  // polls after t_full naming churn_worker
  int polls_after_found = 0;                // polls after the first one that named the leak,
  std::vector<std::string> missed_after_found;  // and those of them that did not name it
  std::vector<std::string> poll_errors;     // check_leaks not served
  std::vector<std::string> schema;          // first reply's schema problems (and later new ones)
  int64_t detected_site_indicators = 0;     // site_growth + accumulation counted by background checks
  std::string exit_status;
  std::string trace;
  std::string sites;    // the service's top sites at the end (describe_sites)
  std::string process;  // stdout/stderr of the service

  int64_t delay_checks() const {
    if (!found) return -1;
    if (checks_at_significant < 0 || checks_at_found < checks_at_significant) return 0;
    return checks_at_found - checks_at_significant;
  }
};

PlantedResult run_planted_leak(const PlantedOptions& options);

}  // namespace lk
