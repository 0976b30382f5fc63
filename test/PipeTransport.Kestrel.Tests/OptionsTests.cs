using System.IO.Pipelines;
using NUnit.Framework;
using PipeTransport.Kestrel;

namespace PipeTransport.Kestrel.Tests;

/// <summary>Every connection-level knob of <see cref="PipeTransportOptions"/> reaches the core's <see cref="FdConnectionOptions"/>.</summary>
public class OptionsTests
{
    [Test, CancelAfter(5000)]
    public void Connection_options_carry_every_setting()
    {
        var group = new ReactorGroup(1);
        try
        {
            var options = new PipeTransportOptions
            {
                InputPauseThreshold = 300_000,
                InputResumeThreshold = 200_000,
                OutputPauseThreshold = 100_000,
                OutputResumeThreshold = 50_000,
                InlineTransportScheduling = false,
                PoolSendThreshold = 12_345,
                BufferSize = 16 * 1024,
                NoDelay = false,
            };

            FdConnectionOptions made = options.CreateConnectionOptions(group);

            Assert.Multiple(() =>
            {
                Assert.That(made.InputPauseThreshold, Is.EqualTo(300_000));
                Assert.That(made.InputResumeThreshold, Is.EqualTo(200_000));
                Assert.That(made.OutputPauseThreshold, Is.EqualTo(100_000));
                Assert.That(made.OutputResumeThreshold, Is.EqualTo(50_000));
                Assert.That(made.InlineTransportScheduling, Is.False);
                Assert.That(made.PoolSendThreshold, Is.EqualTo(12_345));
                Assert.That(made.BufferSize, Is.EqualTo(16 * 1024));
                Assert.That(made.NoDelay, Is.False);
                Assert.That(made.ReactorGroup, Is.SameAs(group));
                Assert.That(made.ApplicationScheduler, Is.SameAs(PipeScheduler.Inline), "the plug-in makes the pool hop itself");
            });
        }
        finally
        {
            group.Dispose();
        }
    }

    [Test, CancelAfter(5000)]
    public void By_default_every_response_flush_is_written_inline()
    {
        Assert.That(new PipeTransportOptions().CreateConnectionOptions(null).PoolSendThreshold, Is.EqualTo(int.MaxValue));
    }
}
