from flask import flash, redirect, render_template, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from crm import limits
from crm.auth import bp
from crm.auth.forms import LoginForm, RegisterForm
from crm.auth.guards import public
from crm.auth.service import AccountError, authenticate, create_user
from crm.extensions import db

LOGIN_FAILED = "Email or password is wrong."


def _start_session(user) -> None:
    session.clear()  # a fresh session: nothing planted before login survives it
    login_user(user)


@bp.route("/")
@public
def index():
    if current_user.is_authenticated:
        return redirect(url_for("integrations.index"))
    return redirect(url_for("auth.login"))


@bp.route("/register", methods=["GET", "POST"])
@public
@limits.registration
def register():
    if current_user.is_authenticated:
        return redirect(url_for("integrations.index"))
    form = RegisterForm()
    if form.validate_on_submit():
        try:
            user = create_user(form.email.data, form.password.data)
        except AccountError as exc:
            getattr(form, exc.field).errors.append(exc.message)
        else:
            _start_session(user)
            flash("Welcome! Add your first integration to connect your CRM.", "success")
            return redirect(url_for("integrations.index"))
    status = 422 if form.errors else 200
    return render_template("auth/register.html", form=form), status


@bp.route("/login", methods=["GET", "POST"])
@public
@limits.login_by_address
@limits.failed_logins
def login():
    if current_user.is_authenticated:
        return redirect(url_for("integrations.index"))
    form = LoginForm()
    if form.validate_on_submit():
        user = authenticate(form.email.data, form.password.data)
        if user is not None:
            _start_session(user)
            return redirect(url_for("integrations.index"))
        limits.count_failed_login()
        form.form_errors.append(LOGIN_FAILED)
    status = 422 if form.errors or form.form_errors else 200
    return render_template("auth/login.html", form=form), status


@bp.post("/logout")
@login_required
@limits.logout
def logout():
    current_user.end_sessions()  # this cookie, and any copy of it, no longer logs anyone in
    db.session.commit()
    logout_user()
    session.clear()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))
