using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using NUnit.Framework;
using PipeTransport.Kestrel;

namespace PipeTransport.Kestrel.Tests;

/// <summary>
/// <see cref="PipeTransportOptions.ConnectionOptions"/> is the core's <see cref="FdConnectionOptions"/>
/// every connection is made with, and its pool is the one Kestrel is given.
/// </summary>
public class OptionsTests
{
    [Test, CancelAfter(5000)]
    public void Connection_options_start_from_the_servers_defaults()
    {
        FdConnectionOptions options = new PipeTransportOptions().ConnectionOptions;
        var core = new FdConnectionOptions();

        Assert.Multiple(() =>
        {
            Assert.That(options.OutputPauseThreshold, Is.EqualTo(64 * 1024));
            Assert.That(options.OutputResumeThreshold, Is.EqualTo(32 * 1024));
            Assert.That(options.PoolSendThreshold, Is.EqualTo(int.MaxValue), "every response flush is written inline");
            Assert.That(options.ApplicationScheduler, Is.SameAs(PipeScheduler.Inline), "the plug-in makes the pool hop itself");
            Assert.That(options.InputPauseThreshold, Is.EqualTo(core.InputPauseThreshold));
            Assert.That(options.InputResumeThreshold, Is.EqualTo(core.InputResumeThreshold));
            Assert.That(options.BufferSize, Is.EqualTo(core.BufferSize));
            Assert.That(options.InlineTransportScheduling, Is.EqualTo(core.InlineTransportScheduling));
            Assert.That(options.NoDelay, Is.EqualTo(core.NoDelay));
            Assert.That(options.ReactorGroup, Is.Null);
        });
    }

    [Test, CancelAfter(5000)]
    public void A_server_uses_a_copy_of_the_connection_options_on_its_own_reactors()
    {
        var options = new PipeTransportOptions();
        options.ConnectionOptions.BufferSize = 16 * 1024;
        using var factory = new PipeTransportFactory(Microsoft.Extensions.Options.Options.Create(options));

        FdConnectionOptions used = factory.GetConnectionOptions();
        Assert.That(used.ReactorGroup, Is.Not.Null.And.SameAs(factory.GetReactorGroup()));
        Assert.That(used.BufferSize, Is.EqualTo(16 * 1024), "every other setting as the user left it");
        Assert.That(options.ConnectionOptions.ReactorGroup, Is.Null, "the user's object is not changed");
    }

    [Test, CancelAfter(5000)]
    public void A_reactor_group_set_in_the_connection_options_is_used_instead_of_the_servers_own()
    {
        using var group = new ReactorGroup(1);
        var options = new PipeTransportOptions { ReactorCount = 2 };
        options.ConnectionOptions.ReactorGroup = group;
        using var factory = new PipeTransportFactory(Microsoft.Extensions.Options.Options.Create(options));

        Assert.That(factory.GetConnectionOptions().ReactorGroup, Is.SameAs(group));
        factory.Dispose();
        Assert.That(options.ConnectionOptions.ReactorGroup, Is.SameAs(group), "the user's group is the user's");
    }

    /// <summary>
    /// Kestrel's <see cref="IMemoryPoolFeature"/> hands out the pool the connection's pipes are built from
    /// (<see cref="FdConnectionOptions.MemoryPool"/>; the core's tests show the pipes' blocks come from it),
    /// not a second one, and a request through that connection is served.
    /// </summary>
    [Test, CancelAfter(20_000)]
    public async Task MemoryPoolFeature_is_the_pool_of_the_connections_pipes(CancellationToken ct)
    {
        const int blockSize = 16 * 1024;
        var pools = new List<MemoryPool<byte>?>();
        PipeTransportOptions? used = null;
        await using var server = await TestServer.StartAsync(
            k => k.Listen(IPAddress.Loopback, 0, listen => RecordPools(listen, pools)),
            ct,
            o =>
            {
                o.ConnectionOptions.BufferSize = blockSize;
                used = o;
            });
        using var client = new HttpClient { BaseAddress = server.TcpUri };

        Assert.That(await client.GetStringAsync("/", ct), Is.EqualTo("hello"));
        lock (pools)
        {
            Assert.That(pools, Is.Not.Empty);
            Assert.That(pools, Has.All.SameAs(used!.ConnectionOptions.MemoryPool));
        }
        Assert.That(used.ConnectionOptions.MemoryPool.MaxBufferSize, Is.EqualTo(blockSize));
    }

    /// <summary>A pool set in the connection options is the one the server uses, and Kestrel's memory pool.</summary>
    [Test, CancelAfter(20_000)]
    public async Task A_memory_pool_set_in_the_connection_options_is_the_servers(CancellationToken ct)
    {
        using var own = new PinnedBlockMemoryPool(16 * 1024, maxCachedBytes: 1 << 20, evictionPeriod: TimeSpan.FromSeconds(1));
        var pools = new List<MemoryPool<byte>?>();
        await using var server = await TestServer.StartAsync(
            k => k.Listen(IPAddress.Loopback, 0, listen => RecordPools(listen, pools)),
            ct,
            o =>
            {
                o.ConnectionOptions.BufferSize = 16 * 1024;
                o.ConnectionOptions.MemoryPool = own;
            });
        using var client = new HttpClient { BaseAddress = server.TcpUri };

        Assert.That(await client.GetStringAsync("/", ct), Is.EqualTo("hello"));
        lock (pools)
        {
            Assert.That(pools, Is.Not.Empty);
            Assert.That(pools, Has.All.SameAs(own));
        }
    }

    /// <summary>Records the memory pool Kestrel hands each connection (its <see cref="IMemoryPoolFeature"/>).</summary>
    private static void RecordPools(ListenOptions listen, List<MemoryPool<byte>?> pools) =>
        listen.Use(next => connection =>
        {
            lock (pools)
            {
                pools.Add(connection.Features.Get<IMemoryPoolFeature>()?.MemoryPool);
            }
            return next(connection);
        });
}
