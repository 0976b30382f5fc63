using System.Globalization;

namespace PipeTransport.Bridge;

/// <summary>Parses sizes like <c>65536</c>, <c>64k</c>, <c>1m</c> (binary multiples).</summary>
internal static class ByteSize
{
    public const int Min = 1;
    public const int Max = 256 << 20;

    public static bool TryParse(string text, out int size)
    {
        size = 0;
        string t = text.Trim().ToLowerInvariant();
        if (t.EndsWith("ib", StringComparison.Ordinal)) t = t[..^2];
        else if (t.EndsWith('b') && t.Length > 1 && !char.IsDigit(t[^2])) t = t[..^1];
        long multiplier = 1;
        if (t.Length > 0)
        {
            switch (t[^1])
            {
                case 'k': multiplier = 1L << 10; t = t[..^1]; break;
                case 'm': multiplier = 1L << 20; t = t[..^1]; break;
                case 'g': multiplier = 1L << 30; t = t[..^1]; break;
            }
        }
        if (!long.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out long value)) return false;
        long bytes = value * multiplier;
        if (bytes < Min || bytes > Max) return false;
        size = (int)bytes;
        return true;
    }
}
