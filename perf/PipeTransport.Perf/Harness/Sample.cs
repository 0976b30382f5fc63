namespace PipeTransport.Perf.Harness;

/// <summary>
/// One timed run's result: the scenario's metric, plus latency percentiles or a secondary metric
/// (<see cref="IScenario.SecondaryUnit"/>) where the scenario has them.
/// </summary>
internal readonly record struct Sample(double Value, double? P50Micros = null, double? P99Micros = null, double? Secondary = null)
{
    public static Sample Throughput(long bytes, long startTimestamp, long endTimestamp)
    {
        double seconds = (endTimestamp - startTimestamp) / (double)System.Diagnostics.Stopwatch.Frequency;
        return new Sample(bytes / seconds / (1L << 30));
    }
}
