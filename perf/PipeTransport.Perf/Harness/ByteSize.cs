using System.Globalization;

namespace PipeTransport.Perf.Harness;

/// <summary>Parses and prints byte counts such as <c>1GiB</c>, <c>256MiB</c>, <c>64KiB</c>, <c>4096</c>.</summary>
internal static class ByteSize
{
    private static readonly (string Suffix, long Factor)[] Suffixes =
    [
        ("GiB", 1L << 30), ("MiB", 1L << 20), ("KiB", 1L << 10),
        ("G", 1L << 30), ("M", 1L << 20), ("K", 1L << 10), ("B", 1),
    ];

    public static long Parse(string text)
    {
        string t = text.Trim();
        foreach (var (suffix, factor) in Suffixes)
        {
            if (t.EndsWith(suffix, StringComparison.OrdinalIgnoreCase))
            {
                return checked((long)(double.Parse(t[..^suffix.Length], CultureInfo.InvariantCulture) * factor));
            }
        }

        return long.Parse(t, CultureInfo.InvariantCulture);
    }

    public static string Format(long bytes) => bytes switch
    {
        >= 1L << 30 when bytes % (1L << 30) == 0 => $"{bytes >> 30} GiB",
        >= 1L << 20 when bytes % (1L << 20) == 0 => $"{bytes >> 20} MiB",
        >= 1L << 10 when bytes % (1L << 10) == 0 => $"{bytes >> 10} KiB",
        _ => $"{bytes} B",
    };
}
