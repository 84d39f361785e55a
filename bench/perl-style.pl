#!/usr/bin/perl
# The yardstick of bench/vs-perl.sh: a small daemon, written for this benchmark, that drives
# fping on a pingmachine base directory the way the Perl pingmachine does (see
# shared/reference/perl-pingmachine-behaviour.md §3, §4.1-4.3, §5-7), so that its CPU
# cost is what the real one costs: the same Perl modules (AnyEvent on EV, YAML::XS,
# RRDs), one fping per step and per group of at most 1,000 orders sharing step and pings,
# hosts on stdin, the -C summary parsed from its stderr, main.rrd updated and last_result
# written as the Perl daemon writes them, and the orders directory rescanned every 30 s.
#
# Only fping orders are supported, and order files are read once (as the Perl daemon
# does: it never notices changes); removals, expiry, archiving and telegraf are left out,
# as the benchmark never exercises them.
#
# usage: perl-style.pl BASEDIR
use strict;
use warnings;
use AnyEvent;
use AnyEvent::Util qw(run_cmd);
use EV;
use File::Find;
use File::Path qw(mkpath);
use List::Util qw(shuffle);
use RRDs;
use YAML::XS qw(LoadFile);

use constant {
    TIMEOUT    => 3000,    # fping -t, ms
    MIN_WAIT   => 1,       # fping -i, ms
    MAX_ORDERS => 1000,    # orders per fping instance
    RESCAN     => 30,      # seconds between scans of orders/
};

my $base = shift or die "usage: $0 BASEDIR\n";
my $fping = -x '/usr/bin/fping' ? '/usr/bin/fping' : '/usr/sbin/fping';
my %orders;       # id => order
my %instances;    # key => [instance, ...]

# scan walks orders/, lstats every file as the Perl daemon's watcher does, and loads the
# orders it does not know yet.
sub scan {
    my $dir = "$base/orders";
    find({ no_chdir => 1, follow_fast => 1, wanted => sub {
        return if -d $_;
        lstat($_) or return;
        (my $id = $File::Find::name) =~ s{^\Q$dir\E/}{};
        load($id, $_) unless $orders{$id};
    } }, $dir);
}

sub load {
    my ($id, $file) = @_;
    my $o = eval { LoadFile($file) };
    return if !$o || ref $o ne 'HASH' || ($o->{probe} // '') ne 'fping' || !$o->{fping};
    $o->{id}  = $id;
    $o->{dir} = "$base/output/$id";
    mkpath($o->{dir});
    $o->{rrd} = ($o->{rrd_template} // 'smokeping') ne 'norrd';
    create_rrd($o) if $o->{rrd} && !-e "$o->{dir}/main.rrd";
    $orders{$id} = $o;
    my $key = "fping|$o->{pings}|$o->{step}|";
    my ($inst) = grep { @{ $_->{orders} } < MAX_ORDERS } @{ $instances{$key} //= [] };
    if (!$inst) {
        $inst = { step => $o->{step}, pings => $o->{pings}, orders => [],
            offset => int(rand($o->{step} / ($o->{pings} + 1))) };
        push @{ $instances{$key} }, $inst;
        schedule($inst);
    }
    push @{ $inst->{orders} }, $o;
}

# create_rrd creates main.rrd with the Smokeping RRAs of a step below 300 s.
sub create_rrd {
    my ($o) = @_;
    my ($step, $pings) = @$o{qw(step pings)};
    my $now = int(AnyEvent->now);
    my @rra = ("RRA:AVERAGE:0.5:1:900");
    for ([300, 864, 'AVERAGE MIN MAX'], [1800, 480, 'AVERAGE MIN MAX'], [3600, 960, 'AVERAGE MIN MAX'],
        [43200, 800, 'AVERAGE MAX MIN'], [604800, 520, 'AVERAGE MAX MIN']) {
        my ($span, $rows, $cfs) = @$_;
        push @rra, map { "RRA:$_:0.5:" . ($span / $step) . ":$rows" } split ' ', $cfs;
    }
    RRDs::create("$o->{dir}/main.rrd", '--start', $now - $now % $step - $step, '--step', $step,
        "DS:loss:GAUGE:" . 2 * $step . ":0:$pings", "DS:median:GAUGE:" . 2 * $step . ":0:180",
        (map { "DS:ping$_:GAUGE:" . 2 * $step . ":0:180" } 1 .. $pings), @rra);
    my $err = RRDs::error;
    warn "error while updating $o->{dir}/main.rrd: $err\n" if $err;
}

# schedule arms a one-shot timer for the next second whose time mod step is the
# instance's offset; each run arms the next one first.
sub schedule {
    my ($inst) = @_;
    my $m = int(AnyEvent->now) % $inst->{step};
    my $after = $m < $inst->{offset} ? $inst->{offset} - $m : $inst->{offset} - $m + $inst->{step};
    $inst->{timer} = AnyEvent->timer(after => $after, cb => sub { schedule($inst); run($inst) });
}

sub run {
    my ($inst) = @_;
    kill 'KILL', $inst->{pid} if $inst->{pid};
    my $n = @{ $inst->{orders} } or return;
    my $interval = int(($inst->{step} * 1000 * 0.8 - $n * MIN_WAIT - TIMEOUT) / $inst->{pings});
    if ($interval < 1000) {
        warn "fping: calculated interval too small: $interval\n";
        return;
    }
    my %byhost;
    push @{ $byhost{ $_->{fping}{host} } }, $_ for @{ $inst->{orders} };
    my $stdin = join '', map {"$_\n"} shuffle keys %byhost;
    my $stderr = '';
    my $cv = run_cmd([$fping, '-q', '-p', $interval, '-C', $inst->{pings}, '-i', MIN_WAIT, '-t', TIMEOUT],
        '<' => \$stdin, '>' => '/dev/null', '2>' => \$stderr, '$$' => \$inst->{pid});
    $cv->cb(sub {
        my $status = shift->recv >> 8;
        delete $inst->{pid};
        if ($status > 2) {
            warn "fping seems to have failed (exit: $status, stderr: $stderr)\n";
            return;
        }
        collect($inst, \%byhost, $stderr);
    });
}

# collect parses fping's -C summary and writes each order's results.
sub collect {
    my ($inst, $byhost, $stderr) = @_;
    my $now = int(time);
    my $time = $now - $inst->{step} - $now % $inst->{step};
    for my $line (split /\n/, $stderr) {
        $line =~ /^(\S+)[ \t]+:((?:[ \t]+[-\d.]+)*)/ or next;
        my $orders = $byhost->{$1} or next;
        my @rtts = sort { $a <=> $b } map { $_ / 1000 } grep { $_ ne '-' } split ' ', $2;
        for my $o (@$orders) {
            update_rrd($o, $time, \@rtts) if $o->{rrd};
            write_result($o, $time, $now, \@rtts);
        }
    }
}

sub update_rrd {
    my ($o, $time, $rtts) = @_;
    my $loss = $o->{pings} - @$rtts;
    my @v = map { sprintf '%.6e', $_ } @$rtts;
    my $median = @v ? $v[ int(@v / 2) ] : 'U';
    my @values = (('U') x int($loss / 2), @v, ('U') x ($loss - int($loss / 2)));
    RRDs::update("$o->{dir}/main.rrd", join(':', $time, $loss, $median, @values));
    my $err = RRDs::error;
    warn "error while updating $o->{dir}/main.rrd: $err\n" if $err;
}

sub write_result {
    my ($o, $time, $now, $rtts) = @_;
    my @v = map { sprintf '%.6e', $_ } @$rtts;
    my $file = "$o->{dir}/last_result";
    open(my $fh, '>', "$file.tmp") or return warn "can't write $file.tmp: $!\n";
    print $fh "time: $time\nupdated: $now\nstep: $o->{step}\npings: $o->{pings}\n",
        'loss: ', $o->{pings} - @v, "\n", 'min: ', $v[0] // '~', "\n",
        'median: ', (@v ? $v[ int(@v / 2) ] : '~'), "\n", 'max: ', $v[-1] // '~', "\n";
    close $fh;
    unlink $file;
    rename("$file.tmp", $file) or warn "can't rename $file.tmp to $file: $!\n";
}

scan();
my $rescan = AnyEvent->timer(after => RESCAN, interval => RESCAN, cb => \&scan);
my $stop = AnyEvent->condvar;
my @signals = map { AnyEvent->signal(signal => $_, cb => sub { $stop->send }) } qw(INT TERM);
$stop->recv;
kill 'KILL', grep {$_} map { $_->{pid} } map {@$_} values %instances;
