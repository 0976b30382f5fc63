using System.Globalization;
using System.Net.Sockets;
using System.Text;
using NUnit.Framework;
using PipeTransport.Tests;

namespace PipeTransport.Kestrel.Tests;

/// <summary>A Kestrel server on PipeTransport whose fd table fills up keeps serving, and serves the backlog once fds are free.</summary>
public sealed class FdLimitTests
{
    [Test, CancelAfter(120_000)]
    public async Task AServerAtTheFdLimitWaitsWithoutSpinningAndServesTheBacklogOnceFdsAreFree(CancellationToken ct)
    {
        // The runtime holds an fd for each assembly it loaded: about 190 in this server once it has answered.
        const int limit = 384, headroom = 32;
        await using FdExhaustion server = FdExhaustion.StartTestChild(limit, "kestrel", "pipe", headroom.ToString(CultureInfo.InvariantCulture));
        int port = int.Parse(await server.WaitLineAsync("listening ", ct), CultureInfo.InvariantCulture);

        await server.RunAsync(port, GetAsync, headroom, ct);

        Assert.That(server.HasLoaded("MonoPosixHelper"), Is.False);
        Assert.That(await server.StopAsync(ct), Is.EqualTo(0), server.Output);
        Assert.That(server.Output, Does.Not.Contain("fail:"), "Kestrel logged no error");
        Assert.That(server.Output, Does.Contain($"{PipeTransportLog.Category}[21]").And.Contain($"{PipeTransportLog.Category}[22]"),
            "the plug-in logged the fd limit entered and left");
        TestContext.Out.WriteLine($"FdLimitEntered logged {server.Output.Split($"{PipeTransportLog.Category}[21]").Length - 1} times");
    }

    /// <summary>One keep-alive request: <c>GET /</c>, answered "hello" in one chunk.</summary>
    private static async Task GetAsync(Socket client, CancellationToken ct)
    {
        await client.SendAsync("GET / HTTP/1.1\r\nHost: test\r\n\r\n"u8.ToArray(), ct);
        var response = new StringBuilder();
        var buffer = new byte[4096];
        while (!response.ToString().EndsWith("\r\nhello\r\n0\r\n\r\n", StringComparison.Ordinal))
        {
            int n = await client.ReceiveAsync(buffer, ct);
            Assert.That(n, Is.GreaterThan(0), $"the server closed the connection after: {response}");
            response.Append(Encoding.ASCII.GetString(buffer, 0, n));
        }

        Assert.That(response.ToString(), Does.StartWith("HTTP/1.1 200 OK"));
    }
}
