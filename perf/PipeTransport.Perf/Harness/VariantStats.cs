namespace PipeTransport.Perf.Harness;

/// <summary>The timed samples of one variant and their summary.</summary>
internal sealed class VariantStats(Variant variant)
{
    public Variant Variant { get; } = variant;

    public List<Sample> Samples { get; } = [];

    public double Median => MedianOf(Samples.Select(s => s.Value));

    public double Min => Samples.Min(s => s.Value);

    public double Max => Samples.Max(s => s.Value);

    public double? P50Micros => Samples.All(s => s.P50Micros.HasValue) && Samples.Count > 0 ? MedianOf(Samples.Select(s => s.P50Micros!.Value)) : null;

    public double? Secondary => Samples.All(s => s.Secondary.HasValue) && Samples.Count > 0 ? MedianOf(Samples.Select(s => s.Secondary!.Value)) : null;

    public double? P99Micros => Samples.All(s => s.P99Micros.HasValue) && Samples.Count > 0 ? MedianOf(Samples.Select(s => s.P99Micros!.Value)) : null;

    public static double MedianOf(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        int mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }
}
