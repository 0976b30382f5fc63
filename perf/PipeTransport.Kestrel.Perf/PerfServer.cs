using System.Diagnostics;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace PipeTransport.Kestrel.Perf;

/// <summary>
/// The app under test, identical on every transport: /plaintext (13 bytes, TechEmpower style), /64k
/// (one 64 KiB body) and /stats (RSS and managed heap after a full GC, for the idle-memory measure).
/// </summary>
internal static class PerfServer
{
    private static readonly byte[] s_hello = "Hello, World!"u8.ToArray();
    private static readonly byte[] s_64k = Enumerable.Range(0, 64 * 1024).Select(i => (byte)('a' + i % 26)).ToArray();

    public static async Task<int> RunAsync(string[] args)
    {
        var transport = Arg(args, "--transport") ?? "pipe";
        var port = int.Parse(Arg(args, "--port") ?? "5000", System.Globalization.CultureInfo.InvariantCulture);

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(IPAddress.Loopback, port);
            k.AddServerHeader = false;
        });
        switch (transport)
        {
            case "sockets":
                break;
            case "pipe":
                builder.WebHost.UsePipeTransport();
                break;
            case "pipe-inline":
                builder.WebHost.UsePipeTransport(o => o.UnsafePreferInlineScheduling = true);
                break;
            default:
                throw new ArgumentException($"unknown transport {transport}");
        }

        var app = builder.Build();
        app.Run(context =>
        {
            var path = context.Request.Path.Value;
            var body = path switch
            {
                "/plaintext" => s_hello,
                "/64k" => s_64k,
                "/stats" => Stats(),
                _ => null,
            };
            if (body is null)
            {
                context.Response.StatusCode = 404;
                return Task.CompletedTask;
            }
            context.Response.ContentType = "text/plain";
            context.Response.ContentLength = body.Length;
            return context.Response.Body.WriteAsync(body, 0, body.Length);
        });
        await app.StartAsync();
        Console.WriteLine("READY");
        // The parent stops us by closing stdin.
        await Console.In.ReadToEndAsync();
        await app.StopAsync();
        return 0;
    }

    private static byte[] Stats()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        using var process = Process.GetCurrentProcess();
        return System.Text.Encoding.ASCII.GetBytes($"{process.WorkingSet64} {GC.GetTotalMemory(false)}");
    }

    internal static string? Arg(string[] args, string name)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }
}
