package launch

import (
	"slices"
	"testing"
)

func TestFromArgv(t *testing.T) {
	tests := []struct {
		name       string
		argv       []string
		images     []string
		unresolved []string
	}{
		{"plain", []string{"apptainer", "exec", "a.sif", "true"}, []string{"a.sif"}, nil},
		{"full path", []string{"/opt/apptainer/bin/apptainer", "run", "/s/a.sif"},
			[]string{"/s/a.sif"}, nil},
		{"singularity", []string{"singularity", "shell", "b.sif"}, []string{"b.sif"}, nil},
		{"after a launcher", []string{"mpirun", "-np", "4", "apptainer", "exec", "--nv",
			"-B", "/d:/d", "c.sif", "./solver"}, []string{"c.sif"}, nil},
		{"env and time", []string{"env", "A=1", "time", "apptainer", "test", "d.sif"},
			[]string{"d.sif"}, nil},
		{"instance start", []string{"apptainer", "instance", "start", "e.sif", "web"},
			[]string{"e.sif"}, nil},
		{"running instance", []string{"apptainer", "exec", "instance://web", "ls"}, nil,
			nil},
		{"not a launch", []string{"apptainer", "build", "out.sif", "x.def"}, nil, nil},
		{"no container", []string{"hostname"}, nil, nil},
		{"copying an image", []string{"cp", "a.sif", "b.sif"}, nil, nil},
		{"image run directly", []string{"./app.sif", "--help"}, []string{"./app.sif"}, nil},
		{"run-singularity", []string{"run-singularity", "f.simg"}, []string{"f.simg"}, nil},
		{"remote", []string{"apptainer", "exec", "docker://alpine", "ls"}, nil,
			[]string{"docker://alpine"}},
		{"unknown option", []string{"apptainer", "exec", "--brand-new", "x", "g.sif"}, nil,
			[]string{"apptainer exec --brand-new x g.sif"}},
		{"sh -c", []string{"bash", "-lc", "cd /w && apptainer exec /s/h.sif run; " +
			"apptainer exec rel.sif x"}, []string{"/s/h.sif"}, []string{"rel.sif"}},
		{"sh -c with a variable", []string{"sh", "-c",
			"exec apptainer exec \"$(cat /tmp/which)\" sleep 9"}, nil,
			[]string{`"$(cat /tmp/which)"`}},
		{"sh -c eval", []string{"sh", "-c", "eval 'apptainer exec /x/v.img id'"},
			[]string{"/x/v.img"}, nil},
		{"sh -c source", []string{"bash", "-c", ". ./run.sh"}, nil,
			[]string{". ./run.sh"}},
		{"sh -c quoted runtime", []string{"sh", "-c", "a\\pptainer exec /x/q.img id"},
			[]string{"/x/q.img"}, nil},
		{"nested container command", []string{"apptainer", "exec", "i.sif", "apptainer",
			"exec", "inner.sif"}, []string{"i.sif"}, nil},
	}
	for _, tt := range tests {
		got := FromArgv(tt.argv)
		if !slices.Equal(got.Images, tt.images) || !slices.Equal(got.Unresolved, tt.unresolved) {
			t.Errorf("%s: %q: got images %q unresolved %q; want %q %q", tt.name, tt.argv,
				got.Images, got.Unresolved, tt.images, tt.unresolved)
		}
	}
}

func TestFromScript(t *testing.T) {
	tests := []struct {
		name       string
		script     string
		images     []string
		unresolved []string
	}{
		{"batch script", `#!/bin/bash
#SBATCH -n 1
#SBATCH --job-name=apptainer exec fake.sif
module load apptainer
srun apptainer exec /shared/a.sif ./run --in data  # apptainer exec comment.sif
`, []string{"/shared/a.sif"}, nil},
		{"variable", "IMG=/s/b.sif\napptainer run \"$IMG\"\n", []string{"/s/b.sif"}, nil},
		{"braced variable built from another", "D=/s\nexport IMG=${D}/c.sif\n" +
			"apptainer run ${IMG} arg\n", []string{"/s/c.sif"}, nil},
		{"assigned twice", "IMG=/s/d1.sif\nif x; then IMG=/s/d2.sif; fi\n" +
			"apptainer exec $IMG true\n", []string{"/s/d1.sif", "/s/d2.sif"}, nil},
		{"assigned only conditionally", "if x; then IMG=/s/e.sif; fi\n" +
			"apptainer exec $IMG true\n", nil, []string{"$IMG"}},
		{"used before assignment", "apptainer exec $IMG true\nIMG=/s/f.sif\n", nil,
			[]string{"$IMG"}},
		{"from the environment", "apptainer exec \"$HOME/g.sif\" true\n", nil,
			[]string{`"$HOME/g.sif"`}},
		{"command-local assignment", "IMG=/s/h.sif apptainer exec $IMG true\n", nil,
			[]string{"$IMG"}},
		{"loop variable", "IMG=/s/i.sif\nfor IMG in a b; do apptainer exec $IMG x; done\n",
			nil, []string{"$IMG"}},
		{"read", "IMG=/s/j.sif\nread IMG < f\napptainer exec $IMG x\n", nil,
			[]string{"$IMG"}},
		{"appended", "IMG=/s/k\nIMG+=.sif\napptainer exec $IMG x\n", nil, []string{"$IMG"}},
		{"sourced", "IMG=/s/l.sif\n. ./env.sh\napptainer exec $IMG x\n", nil,
			[]string{". ./env.sh", "$IMG"}},
		{"source of a user's file", "source $HOME/setup.sh\nhostname\n", nil,
			[]string{"source $HOME/setup.sh"}},
		{"source of a system file", ". /etc/profile.d/modules.sh\nls .\n", nil, nil},
		{"eval of a literal launch", "eval \"apptainer exec /x/vuln.img id\"\n",
			[]string{"/x/vuln.img"}, nil},
		{"eval of words", "eval apptainer exec /x/w.img 'id;' \"sleep 1\"\n",
			[]string{"/x/w.img"}, nil},
		{"eval of a variable", "eval $CMD\n", nil, []string{"$CMD"}},
		{"eval of a substitution", "eval \"$(conda shell.bash hook)\"\n", nil,
			[]string{`"$(conda shell.bash hook)"`}},
		{"quoting removed by the shell", "a\\pptainer exec /x/a.img id\n" +
			"apptain\"\"er exec /x/b.sqfs id\nsingul'arity' run /x/sandbox\n",
			[]string{"/x/a.img", "/x/b.sqfs", "/x/sandbox"}, nil},
		{"command substitution", "apptainer exec $(ls /s/*.sif | head -1) x\n", nil,
			[]string{"$(ls /s/*.sif | head -1)"}},
		{"launch inside a substitution", "v=$(apptainer exec /s/m.sif cat /v)\n",
			[]string{"/s/m.sif"}, nil},
		{"backquotes", "v=`singularity exec /s/n.sif cat /v`\n", []string{"/s/n.sif"}, nil},
		{"glob", "apptainer exec /s/*.sif x\n", nil, []string{"/s/*.sif"}},
		{"unquoted variable with spaces", "IMG='/s/a b.sif'\napptainer exec $IMG x\n", nil,
			[]string{"$IMG"}},
		{"quoted path with spaces", "apptainer exec '/s/a b.sif' x\n",
			[]string{"/s/a b.sif"}, nil},
		{"line continuation", "apptainer exec \\\n  --bind /a:/a \\\n  /s/o.sif \\\n  x\n",
			[]string{"/s/o.sif"}, nil},
		{"here-document", "cat > run.sh <<'EOF'\napptainer exec /s/not.sif x\nEOF\n" +
			"apptainer exec /s/p.sif x\n", []string{"/s/p.sif"}, nil},
		{"indented here-document", "cat <<-END\n\tapptainer exec /s/not.sif\n\tEND\n" +
			"apptainer run /s/q.sif\n", []string{"/s/q.sif"}, nil},
		{"redirections", "apptainer exec 2>/dev/null /s/r.sif x >out 2>&1\n",
			[]string{"/s/r.sif"}, nil},
		{"pipeline and lists", "true && apptainer exec /s/s.sif a | tee o; " +
			"singularity run /s/t.sif || exit 1\n", []string{"/s/s.sif", "/s/t.sif"}, nil},
		{"relative after cd", "apptainer exec u.sif x\ncd /tmp\napptainer exec v.sif x\n" +
			"apptainer exec /s/w.sif x\n", []string{"u.sif", "/s/w.sif"}, []string{"v.sif"}},
		{"program in a variable", "$APPTAINER exec /s/x.sif true\n", []string{"/s/x.sif"},
			nil},
		{"subcommand in a variable", "apptainer $ACTION /s/y.sif\n", nil,
			[]string{"apptainer $ACTION /s/y.sif"}},
		{"options in a variable", "apptainer exec $OPTS /s/z.sif x\n", nil,
			[]string{"$OPTS"}},
		{"array", "IMGS=(/s/a1.sif /s/a2.sif)\napptainer exec ${IMGS[0]} x\n", nil,
			[]string{"${IMGS[0]}"}},
		{"eval", "eval \"apptainer exec $IMG\"\n", nil,
			[]string{`"apptainer exec $IMG"`}},
		{"function", "run() {\n  apptainer exec /s/fn.sif \"$@\"\n}\nrun a\n",
			[]string{"/s/fn.sif"}, nil},
		{"bash -c in a script", "bash -c 'apptainer exec /s/bc.sif x'\n",
			[]string{"/s/bc.sif"}, nil},
		{"exec", "exec apptainer exec /s/ex.sif sleep 9\n", []string{"/s/ex.sif"}, nil},
		{"case", "case $1 in\n a) apptainer exec /s/ca.sif ;;\n *) exit 1;;\nesac\n",
			[]string{"/s/ca.sif"}, nil},
	}
	for _, tt := range tests {
		got := FromScript(tt.script)
		if !slices.Equal(got.Images, tt.images) || !slices.Equal(got.Unresolved, tt.unresolved) {
			t.Errorf("%s: got images %q unresolved %q; want %q %q", tt.name, got.Images,
				got.Unresolved, tt.images, tt.unresolved)
		}
	}
}

func TestImagesFromScript(t *testing.T) {
	got := ImagesFromScript("srun apptainer exec /s/a.sif x\napptainer run b.sif\n")
	if want := []string{"/s/a.sif", "b.sif"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func FuzzFromScript(f *testing.F) {
	f.Add("IMG=/a.sif\napptainer exec \"$IMG\" x <<EOF\nbody\nEOF\n")
	f.Add("A=(0\"")
	f.Add("a=$(b `c` \"$(d)\") ${e:-f} $'g\\'' (h) { i; } 2>&1 <(j)")
	f.Fuzz(func(t *testing.T, script string) {
		FromScript(script) // must not panic or hang
	})
}
