namespace PipeTransport.Perf.Soak;

/// <summary>The bodies the soak server answers with and its clients check (the wrk script builds the same).</summary>
internal static class SoakData
{
    public const string Hello = "Hello, World!";

    /// <summary>64 KiB of <c>abc...z</c> repeated: the <c>/64k</c> body and the bytes <c>/big</c> streams.</summary>
    public static byte[] Pattern() => Enumerable.Range(0, SoakServer.PatternLength).Select(i => (byte)('a' + i % 26)).ToArray();
}
