#include "planted.h"

#include <sstream>
#include <thread>

namespace lk {

PlantedResult run_planted_leak(const PlantedOptions& options) {
  PlantedResult res;
  const std::string program = rt::program("service");
  rt::TempDir dir("rsrleak");
  rt::Spawn s;
  s.argv = {program};
  s.socket_dir = dir.path();
  s.env = base_env();
  rt::Process p(s);
  const auto t0 = Clock::now();
  PollTrace trace;
  auto finish = [&](PlantedResult& r) {
    r.trace = trace.str();
    r.process = p.describe();
  };
  if (!p.started()) {
    res.setup_error = "service did not start";
    return res;
  }
  auto ready = p.read_until([](const std::string& l) { return l.rfind("ready ", 0) == 0; }, 20000);
  rt::Reply hello;
  if (!ready || !rt::wait_for_socket(dir.path(), p.pid(), 20000, &hello)) {
    res.setup_error = "no ready line or no socket: " + hello.describe();
    finish(res);
    return res;
  }
  if (!p.read_until([](const std::string& l) { return l.rfind("cache_full ", 0) == 0; }, 20000)) {
    res.setup_error = "the cache never filled";
    finish(res);
    return res;
  }
  res.t_full = seconds_since(t0);
  res.t_stable = stable_after(res.t_full);
  p.write("leak\n");
  auto leaking = p.read_until([](const std::string& l) { return l.rfind("leaking ", 0) == 0; }, 20000);
  if (!leaking) {
    res.setup_error = "the leak did not start";
    finish(res);
    return res;
  }
  res.t_leak = seconds_since(t0);
  {
    std::istringstream in(leaking->substr(8));
    double sessions_per_s = 0, state_bytes = 0;
    in >> sessions_per_s >> state_bytes;
    const double rate = sessions_per_s * state_bytes;
    if (rate <= 0) {
      res.setup_error = "bad leaking line: " + *leaking;
      finish(res);
      return res;
    }
    res.t_significant = res.t_leak + static_cast<double>(kMinSiteBytes) / rate;
  }
  trace.note(res.t_full, "cache full");
  trace.note(res.t_leak, "leak started; significant from t=" + std::to_string(res.t_significant));

  const double interval_s = kIntervalMs / 1000.0;
  int consecutive_errors = 0;
  nlohmann::json last;
  for (;;) {
    const double t = seconds_since(t0);
    const bool observed_enough = options.observe_stable_intervals == 0 ||
                                 t >= res.t_stable + options.observe_stable_intervals * interval_s + 0.5;
    if (res.found && observed_enough) break;
    if (!res.found && t > res.t_significant + options.give_up_intervals * interval_s) break;
    if (t > res.t_leak + 60) break;  // a hard bound whatever happens

    const rt::Reply r = check_leaks(dir.path(), p.pid());
    const double tq = seconds_since(t0);
    if (!r.served()) {
      res.poll_errors.push_back("t=" + std::to_string(tq) + " " + r.describe().substr(0, 300));
      trace.note(tq, "not served: " + r.describe().substr(0, 200));
      if (++consecutive_errors >= 3) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(kPollMs));
      continue;
    }
    consecutive_errors = 0;
    last = r.json;
    trace.add(tq, r.json, program);
    if (res.schema.empty()) res.schema = schema_problems(r.json);
    const int64_t checks = checks_of(r.json);
    if (tq >= res.t_significant && res.checks_at_significant < 0) res.checks_at_significant = checks;
    if (tq >= res.t_stable && res.checks_at_stable < 0) res.checks_at_stable = checks;
    const bool was_found = res.found;
    bool named = false;
    for (const auto& ind : r.json.value("indicators", nlohmann::json::array())) {
      if (names_function(r.json, ind, program, "register_session")) named = true;
      if (!res.found && named) {
        res.found = true;
        res.checks_at_found = checks;
        res.t_found = tq;
      }
      if (names_function(r.json, ind, program, "cache_lookup")) {
        const std::string what = "t=" + std::to_string(tq) + " checks=" + std::to_string(checks) + " " +
                                 ind.value("type", std::string("?")) + " " + ind.value("severity", std::string("?"));
        if (tq >= res.t_stable) res.cache_reported.push_back(what);
      }
      if (tq >= res.t_full && names_function(r.json, ind, program, "churn_worker"))
        res.churn_reported.push_back("t=" + std::to_string(tq) + " checks=" + std::to_string(checks) + " " +
                                     ind.value("type", std::string("?")));
    }
    if (was_found) {
      ++res.polls_after_found;
      if (!named) res.missed_after_found.push_back("t=" + std::to_string(tq) + " checks=" + std::to_string(checks));
    }
    res.checks_at_end = checks;
    res.t_end = tq;
    std::this_thread::sleep_for(std::chrono::milliseconds(kPollMs));
  }
  res.detected_site_indicators = detected_total(last, "site_growth") + detected_total(last, "accumulation");
  res.sites = describe_sites(dir.path(), p.pid(), program);

  p.write("quit\n");
  p.close_stdin();
  const auto st = p.wait(10000);
  res.exit_status = st ? rt::describe_status(*st) : "did not exit within 10 s";
  finish(res);
  return res;
}

}  // namespace lk
