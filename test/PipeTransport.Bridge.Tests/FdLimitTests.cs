using System.Globalization;
using System.Net.Sockets;
using NUnit.Framework;
using PipeTransport.Tests;

namespace PipeTransport.Bridge.Tests;

/// <summary>pipebridge --fork whose fd table fills up keeps bridging, and serves the backlog once fds are free.</summary>
public sealed class FdLimitTests
{
    [TestCase("copy")]
    [TestCase("splice")]
    [CancelAfter(120_000)]
    public async Task ForkAtTheFdLimitWaitsWithoutSpinningAndServesTheBacklogOnceFdsAreFree(string engine, CancellationToken ct)
    {
        using var dir = new TempDir();
        await using var echo = new UnixEchoServer(dir["echo.sock"], 512, ct);

        // --fork keeps room for the connections it is setting up too (BridgeRunner.ForkFdHeadroom).
        const int limit = 512;
        await using FdExhaustion bridge = FdExhaustion.Start(limit, "dotnet",
            BridgeProcess.DllPath, "--fork", "-d", "-d", "--engine", engine, "tcp-listen:127.0.0.1:0", $"unix:{echo.Path}");
        string address = await bridge.WaitLineAsync("listening on ", ct);
        int port = int.Parse(address[(address.LastIndexOf(':') + 1)..], CultureInfo.InvariantCulture);

        // The connections being set up may use their part of it; the rest stays free. At this limit the
        // listener keeps at most a quarter of it (FdListenerOptions.FdHeadroom), less than ForkFdHeadroom.
        int setUpShare = BridgeRunner.ForkFdHeadroom - FdListenerOptions.DefaultFdHeadroom;
        await bridge.RunAsync(port, EchoAsync, BridgeRunner.ForkFdHeadroom, ct, keptFree: Math.Min(BridgeRunner.ForkFdHeadroom, limit / 4) - setUpShare);

        Assert.That(bridge.HasLoaded("MonoPosixHelper"), Is.False);
        Mono.Unix.Native.Syscall.kill(bridge.Pid, Mono.Unix.Native.Signum.SIGTERM);
        Assert.That(await bridge.StopAsync(ct), Is.EqualTo(143), bridge.Output);
        Assert.That(bridge.Output, Does.Not.Contain("pipebridge: tcp"), "no connection failed");
        await echo.StopAsync();
    }

    private static async Task EchoAsync(Socket client, CancellationToken ct)
    {
        await client.SendAsync("x"u8.ToArray(), ct);
        var answer = new byte[1];
        Assert.That(await client.ReceiveAsync(answer, ct), Is.EqualTo(1));
    }
}
