// server_loop: the "5% budget" program (SPEC 9). Each op is one request of a synthetic service:
// copy the raw request into a buffer, parse the request line, query string and headers into
// std::unordered_map<std::string, std::string>, parse a CSV body of ~100 numbers into a
// std::vector, do the request's real work (check a signature over the raw bytes, sort and score
// the numbers, hash every field), build a JSON response string and drop it all. About 35
// allocations per request (counted with heaptrack) and 200-300 ns of compute for each, so the
// allocator takes about 5% of the time, as in a real service rather than an allocation loop.
// `--threads N` serves the requests from N threads (each its own share, no shared state but the
// read-only pool of raw requests).
#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "bench_common.h"

namespace {

using Fields = std::unordered_map<std::string, std::string>;

constexpr size_t kPoolSize = 64;
constexpr const char* kPaths[] = {"/api/v1/orders/", "/api/v1/customers/",
                                  "/internal/inventory/items/", "/api/v2/search/recommendations/"};
constexpr const char* kSorts[] = {"price", "created_at", "relevance", "popularity_score"};

std::string make_raw_request(bench::Rng& rng) {
  std::string r;
  r += (rng.next() & 1) ? "POST " : "PUT ";
  r += kPaths[rng.range(0, 3)];
  r += std::to_string(rng.range(1, 9'999'999));
  r += "?user=user_" + std::to_string(rng.range(1, 99'999));
  r += "&limit=" + std::to_string(rng.range(10, 100));
  r += "&sort=";
  r += kSorts[rng.range(0, 3)];
  r += "&region=eu-west-" + std::to_string(rng.range(1, 3));
  r += " HTTP/1.1\r\n";
  r += "Host: orders.service.internal.example\r\n";
  r += "User-Agent: bench-client/1.0 (linux; x86_64)\r\n";
  r += "Content-Type: text/csv\r\n";
  r += "X-Request-Id: " + std::to_string(rng.next()) + "\r\n";
  r += "Accept: application/json\r\n";
  r += "\r\n";
  const unsigned n = rng.range(90, 110);
  for (unsigned i = 0; i < n; ++i) {
    if (i) r += ',';
    r += std::to_string(static_cast<int64_t>(rng.next() % 2'000'000) - 1'000'000);
  }
  return r;
}

uint64_t fnv1a(std::string_view s, uint64_t h = 0xcbf29ce484222325ull) {
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// The request's signature check: a keyed add-rotate-xor hash over the raw bytes, standing in for
// the HMAC a real service would verify. kSignatureRounds sets the request's compute budget.
constexpr int kSignatureRounds = 20;

uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

uint64_t signature(std::string_view s, uint64_t key) {
  uint64_t a = key, b = ~key;
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    for (int r = 0; r < kSignatureRounds; ++r) {
      a = rotl(a + w, 23) * 0x9E3779B97F4A7C15ull;
      b = rotl(b ^ a, 31) + w;
    }
  }
  for (; i < s.size(); ++i) a = (a ^ static_cast<unsigned char>(s[i])) * 0x100000001b3ull;
  return a ^ b;
}

std::string_view cut(std::string_view& rest, std::string_view sep) {
  const size_t at = rest.find(sep);
  std::string_view head = rest.substr(0, at);
  rest = at == std::string_view::npos ? std::string_view() : rest.substr(at + sep.size());
  return head;
}

uint64_t serve(const std::string& wire) {
  const std::string buffer = wire;  // "read from the socket"
  std::string_view rest = buffer;

  // Request line and query string.
  std::string_view line = cut(rest, "\r\n");
  const std::string method(cut(line, " "));
  std::string_view target = cut(line, " ");
  const std::string path(cut(target, "?"));
  Fields query;
  while (!target.empty()) {
    std::string_view kv = cut(target, "&");
    std::string_view key = cut(kv, "=");
    query.emplace(std::string(key), std::string(kv));
  }

  // Headers, up to the blank line.
  Fields headers;
  for (std::string_view h = cut(rest, "\r\n"); !h.empty(); h = cut(rest, "\r\n")) {
    std::string_view name = cut(h, ": ");
    headers.emplace(std::string(name), std::string(h));
  }

  // Body: comma-separated integers.
  std::vector<int64_t> values;
  while (!rest.empty()) {
    std::string_view field = cut(rest, ",");
    int64_t v = 0;
    std::from_chars(field.data(), field.data() + field.size(), v);
    values.push_back(v);
  }

  // The request's work: authenticate, sort, score.
  const uint64_t sig = signature(buffer, 0x5EC12E7ull);
  std::sort(values.begin(), values.end());
  int64_t sum = 0;
  double score = 0, score_sq = 0;
  for (int64_t v : values) {
    sum += v;
    const double x = std::log1p(std::fabs(static_cast<double>(v))) * (v < 0 ? -0.5 : 1.0);
    score += x;
    score_sq += x * x;
  }
  const double n = values.empty() ? 1.0 : static_cast<double>(values.size());
  const double stddev = std::sqrt(std::max(0.0, score_sq / n - (score / n) * (score / n)));
  const int64_t median = values.empty() ? 0 : values[values.size() / 2];
  uint64_t digest = fnv1a(method, sig);
  digest = fnv1a(path, digest);
  for (const auto& [k, v] : query) digest ^= fnv1a(v, fnv1a(k));  // order-independent
  for (const auto& [k, v] : headers) digest ^= fnv1a(v, fnv1a(k));
  for (int64_t v : values) digest = (digest ^ static_cast<uint64_t>(v)) * 0x100000001b3ull;
  const auto limit_it = query.find("limit");
  const size_t limit =
      limit_it == query.end() ? 10 : std::strtoul(limit_it->second.c_str(), nullptr, 10);

  // Response.
  std::string response = "{\"path\":\"" + path + "\",\"user\":\"" + query["user"] + "\"";
  response += ",\"request_id\":\"" + headers["X-Request-Id"] + "\"";
  response += ",\"count\":" + std::to_string(values.size());
  response += ",\"sum\":" + std::to_string(sum);
  response += ",\"median\":" + std::to_string(median);
  response += ",\"score_stddev_milli\":" + std::to_string(static_cast<int64_t>(stddev * 1000));
  response += ",\"top\":[";
  const size_t top = std::min<size_t>({limit / 10, values.size(), 10});
  for (size_t i = 0; i < top; ++i) {
    if (i) response += ',';
    response += std::to_string(values[values.size() - 1 - i]);
  }
  response += "],\"digest\":\"" + std::to_string(digest) + "\"}";
  return fnv1a(response);  // "write to the socket"
}

uint64_t serve_many(const std::vector<std::string>& pool, uint64_t first, uint64_t count) {
  uint64_t sum = 0;
  for (uint64_t i = first; i < first + count; ++i) sum += serve(pool[i % kPoolSize]);
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  const bench::Args args = bench::parse_args(argc, argv, 200'000, 1);
  bench::Rng rng(args.seed);
  std::vector<std::string> pool;
  for (size_t i = 0; i < kPoolSize; ++i) pool.push_back(make_raw_request(rng));

  std::atomic<uint64_t> checksum{0};
  bench::warm_up();
  bench::Stopwatch clock;
  if (args.threads == 1) {
    checksum = serve_many(pool, 0, args.ops);
  } else {
    std::vector<std::thread> threads;
    uint64_t first = 0;
    for (unsigned t = 0; t < args.threads; ++t) {
      const uint64_t count = args.ops / args.threads + (t < args.ops % args.threads ? 1 : 0);
      threads.emplace_back([&pool, &checksum, first, count] {
        checksum.fetch_add(serve_many(pool, first, count), std::memory_order_relaxed);
      });
      first += count;
    }
    for (auto& th : threads) th.join();
  }
  const bench::Timing elapsed = clock.elapsed();
  bench::report("server_loop", args.ops, "request", args.threads, elapsed, checksum.load());
  return 0;
}
