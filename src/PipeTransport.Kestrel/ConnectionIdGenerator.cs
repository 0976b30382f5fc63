namespace PipeTransport.Kestrel;

/// <summary>
/// Connection ids in Kestrel's style: 13 base-32 characters of a 64-bit counter seeded from the clock,
/// so ids stay unique across restarts of a process that logs to the same place.
/// </summary>
internal static class ConnectionIdGenerator
{
    private const string Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUV";
    private static long s_lastId = DateTime.UtcNow.Ticks;

    public static long Next() => Interlocked.Increment(ref s_lastId);

    public static string Format(long id) => string.Create(13, id, static (span, value) =>
    {
        for (var i = span.Length - 1; i >= 0; i--)
        {
            span[i] = Alphabet[(int)(value & 31)];
            value >>>= 5;
        }
    });
}
