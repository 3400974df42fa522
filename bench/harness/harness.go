// Package harness holds the reusable pieces of ringcache's benchmarks:
// picking loopback ports, starting redis-server and ringcache nodes in
// throw-away directories, waiting for them to answer PING, driving
// redis-benchmark and parsing its CSV, summarising repeated rounds and
// rendering the result as a text table, Markdown or CSV.
//
// The package is deliberately small and dependency free so that the
// side-by-side benchmark (bench/sidebyside) and later cluster benchmarks
// share the same process handling and the same statistics.
package harness
