using System.Diagnostics;
using System.Net.Sockets;
using PipeTransport.Perf.Harness;

namespace PipeTransport.Perf.Scenarios;

/// <summary>
/// What a script feels: <see cref="Runs"/> bridge processes in a row, each moving 1 MiB from a file to a
/// Unix socket (<c>pipebridge -u file:IN unix:SOCK</c>, <c>socat -u FILE:IN UNIX-CONNECT:SOCK</c>), start-up
/// and exit included. The sink is this process: it accepts each connection and counts its bytes to EOF.
/// </summary>
internal sealed class BridgeScriptScenario : IScenario
{
    /// <summary>Bridge processes per timed run.</summary>
    public const int Runs = 100;

    private const int BytesPerRun = 1 << 20;

    public string Name => "bridge-script";

    public string Description => $"{Runs} bridge processes in a row, 1 MiB each, file → Unix socket, start-up included";

    public string Unit => "MiB/s";

    public bool HigherIsBetter => true;

    public IReadOnlyList<Variant> Variants { get; } =
    [
        new("pipebridge, Native AOT", c => RunAsync(c, (input, socket) => (NativePipebridge.Path, ["-u", "file:" + input, "unix:" + socket])), Unavailable: NativePipebridge.Unavailable),
        new("pipebridge, dotnet pipebridge.dll", c => RunAsync(c, (input, socket) => ("dotnet", [Pipebridge.DllPath, "-u", "file:" + input, "unix:" + socket]))),
        new("socat -u", c => RunAsync(c, (input, socket) => ("socat", ["-u", "FILE:" + input, "UNIX-CONNECT:" + socket])), TargetRatio: 1.0),
    ];

    private static async Task<Sample> RunAsync(RunContext context, Func<string, string, (string File, string[] Arguments)> command)
    {
        var ct = context.CancellationToken;
        string input = Path.Combine(context.WorkDirectory, "script-input.bin");
        if (!File.Exists(input) || new FileInfo(input).Length != BytesPerRun)
        {
            var bytes = new byte[BytesPerRun];
            new Random(PerfSettings.Seed).NextBytes(bytes);
            await File.WriteAllBytesAsync(input, bytes, ct);
        }

        string path = Path.Combine(context.WorkDirectory, "script-sink.sock");
        File.Delete(path);
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(16);
        Task<long> sink = SinkAsync(listener, ct);

        (string file, string[] arguments) = command(input, path);
        long start = Stopwatch.GetTimestamp();
        for (int i = 0; i < Runs; i++)
        {
            await using var bridge = ChildProcess.Start(file, arguments);
            await bridge.WaitForSuccessAsync(ct);
        }

        long end = Stopwatch.GetTimestamp();
        listener.Close();
        long received = await sink;
        if (received != (long)Runs * BytesPerRun)
        {
            throw new InvalidDataException($"the sink received {received} bytes, expected {(long)Runs * BytesPerRun}");
        }

        double seconds = (double)(end - start) / Stopwatch.Frequency;
        return new Sample((double)Runs * BytesPerRun / (1 << 20) / seconds);
    }

    private static async Task<long> SinkAsync(Socket listener, CancellationToken ct)
    {
        long total = 0;
        var buffer = new byte[1 << 16];
        for (int i = 0; i < Runs; i++)
        {
            using Socket connection = await listener.AcceptAsync(ct);
            int n;
            while ((n = await connection.ReceiveAsync(buffer, SocketFlags.None, ct)) > 0)
            {
                total += n;
            }
        }

        return total;
    }
}
